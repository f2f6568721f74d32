#!/usr/bin/env bash
# Installs what Layered needs to build and test, if missing (Debian/Ubuntu),
# and puts Swift on PATH.  Sourced by the other scripts; safe to re-run.
# It leaves the caller's shell options as they were.
layered_saved_opts=$(set +o)
set -euo pipefail

layered_packages=(build-essential cmake pkg-config liburcu-dev libbsd-dev libasan8 libtsan2 spin)
missing=()
for pkg in "${layered_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi

eval "$layered_saved_opts"
unset layered_saved_opts
