#!/usr/bin/env bash
# Installs the library into a scratch prefix and builds the example the way
# a C user would: the header, liblayered.a and layered.pc must be enough.
set -euo pipefail
build_dir=$1
source_dir=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build_dir" --prefix "$prefix" >/dev/null
libdir=$(ls -d "$prefix"/lib*/pkgconfig | head -1)
export PKG_CONFIG_PATH="$libdir"
cc -o "$prefix/example" "$source_dir/examples/example.c" \
  $(pkg-config --cflags --libs --static layered)
"$prefix/example" "$prefix/db" >/dev/null
echo "install test: header, liblayered.a and layered.pc build and run the example"
