#!/usr/bin/env bash
# fa3 (issue 10): the checks of backends/cuda/ws_devrun.sh (one copy) on the
# build that fa3.build.sh made (its configure and build steps are then no-ops).
PA_BUILD=build-fa3 exec bash backends/cuda/ws_devrun.sh
