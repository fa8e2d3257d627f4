#!/usr/bin/env bash
# pip inside the build needs the host's extra CA certificates (the machine's egress goes through them).
set -euo pipefail
mkdir -p "$1/certs"
cp /usr/local/share/ca-certificates/*.crt "$1/certs/" 2>/dev/null || true
