#!/usr/bin/env bash
export OUT_TOP=${OUT:-/tmp/o}; R=$PWD
source .device/remote-setup.sh >/dev/null 2>&1
cd .wt/int && ln -sfn "$R/.device" .device && ln -sfn "$R/.peers" .peers && mkdir -p /tmp/dq/int
T0=$(date +%s)
OUT=/tmp/dq/int timeout 170 bash .devq/build.sh 2>&1 | tail -25; echo "build done $(( $(date +%s) - T0 )) s"
OUT=$OUT_TOP bash .devq/run.sh
