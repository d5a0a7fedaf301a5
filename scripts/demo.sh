#!/usr/bin/env bash
# The main job: install what is missing, build, and run the end-to-end
# example (embed a watermark while sampling, then detect it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
wm_install_packages
wm_build build
./build/examples/embed_detect
