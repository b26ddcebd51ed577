#!/usr/bin/env bash
# System tools the test suite drives as real peers: Chromium (browser tests), dcmtk
# (DICOM peers), Orthanc (benchmarks' peer). Installed once from Debian's packages.
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v storescu >/dev/null || need+=(dcmtk)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "Missing system packages: ${need[*]} (install them with apt-get as root)" >&2
  fi
fi
