#!/usr/bin/env bash
# Stage the image localdev ships for its mongo-java-server flavor (localdev/services/mongo/Dockerfile), with
# the jars and launcher localdev uses natively (cached), on the tests' own Debian 12 base.
set -euo pipefail
"$PYTHON" -c "import localdev.services.mongo.image" 2>/dev/null || { echo "localdev.services.mongo.image is not in this checkout" >&2; exit 1; }
"$PYTHON" -m localdev.services.mongo.image --image-context "$1" --base localhost/base:bookworm >/dev/null
