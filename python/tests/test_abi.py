"""The ctypes structs agree with include/polyattn.h: a C program compiled
against the header prints every struct's size and field offsets."""
import ctypes
import os
import shutil
import subprocess

import pytest

from polyattn import _lib

# The header of the library under test (run_tests.sh: the source tree's).
HEADER_DIR = os.environ.get("POLYATTN_INCLUDE_DIR") or \
    os.path.join(os.path.dirname(__file__), "..", "..", "include")
STRUCTS = {"pa_device_info": _lib.DeviceInfo, "pa_context_desc": _lib.ContextDesc,
           "pa_tensor": _lib.PaTensor, "pa_attention_desc": _lib.AttentionDesc,
           "pa_batch": _lib.Batch, "pa_attention_args": _lib.AttentionArgs,
           "pa_mla_desc": _lib.MlaDesc, "pa_mla_args": _lib.MlaArgs}
if _lib.HAS_APPEND:
    STRUCTS.update({"pa_kv_append_args": _lib.KvAppendArgs,
                    "pa_mla_append_args": _lib.MlaAppendArgs})


def test_structs_match_header(tmp_path):
    cc = shutil.which(os.environ.get("CC", "cc"))
    if not cc or not os.path.exists(os.path.join(HEADER_DIR, "polyattn.h")):
        pytest.skip("needs a C compiler and the source tree's include/polyattn.h")
    lines = ["#include <polyattn.h>", "#include <stddef.h>", "#include <stdio.h>",
             "int main(void) {"]
    for cname, py in STRUCTS.items():
        lines.append(f'printf("{cname} %zu\\n", sizeof({cname}));')
        for f, _ in py._fields_:
            lines.append(f'printf("{cname}.{f} %zu\\n", offsetof({cname}, {f}));')
    lines.append("return 0; }")
    src, exe = tmp_path / "abi.c", tmp_path / "abi"
    src.write_text("\n".join(lines))
    subprocess.run([cc, "-std=c11", "-I", HEADER_DIR, str(src), "-o", str(exe)], check=True)
    want = dict(l.split() for l in subprocess.run([str(exe)], check=True, capture_output=True,
                                                  text=True).stdout.splitlines())
    got = {}
    for cname, py in STRUCTS.items():
        got[cname] = str(ctypes.sizeof(py))
        for f, _ in py._fields_:
            got[f"{cname}.{f}"] = str(getattr(py, f).offset)
    assert got == want
