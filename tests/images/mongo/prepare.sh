#!/usr/bin/env bash
# Stage the FerretDB binary localdev builds for the native runtime (from the Go module proxy, cached).
set -euo pipefail
bin=$("$PYTHON" -c 'from localdev.provision.ferretdb import ferretdb_binary; print(ferretdb_binary())')
cp "$bin" "$1/ferretdb"
