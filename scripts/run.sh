#!/usr/bin/env bash
# The main job: build in release mode and run the demonstration.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j "$(nproc)" >/dev/null
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
./build/release/layered-example "$home/db"
