#!/usr/bin/env bash
# Stage the FerretDB binary localdev builds for the native runtime (from the Go module proxy, cached).
set -euo pipefail
"$PYTHON" -c "import localdev.services.mongo.install" 2>/dev/null || { echo "localdev.services.mongo.install is not in this checkout" >&2; exit 1; }
bin=$("$PYTHON" -c 'from localdev.services.mongo.install import ferretdb_binary; print(ferretdb_binary())')
cp "$bin" "$1/ferretdb"
