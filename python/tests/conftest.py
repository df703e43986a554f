import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import polyattn as pa  # noqa: E402


def backends():
    """cpu always; opencl and cuda where compiled with a device (tensors
    copied there with from_host)."""
    out = ["cpu"]
    if pa.backend_compiled("cuda") and pa.device_count("cuda") > 0:
        out.append("cuda")
    if pa.backend_compiled("opencl") and pa.device_count("opencl") > 0 and \
            os.environ.get("POLYATTN_TEST_OPENCL", "1") != "0":
        out.append("opencl")
    return out


@pytest.fixture(scope="module")
def ctx():
    with pa.Context("cpu", num_threads=2) as c:
        yield c


@pytest.fixture(scope="module", params=backends())
def any_ctx(request):
    with pa.Context(request.param) as c:
        yield c
