#!/usr/bin/env bash
# Stage the DynamoDB Local jar localdev obtains for the native runtime (cached).
set -euo pipefail
"$PYTHON" -c "import localdev.provision.dynamodb" 2>/dev/null || { echo "localdev.provision.dynamodb is not in this checkout" >&2; exit 1; }
jar=$("$PYTHON" -c 'from localdev.provision.dynamodb import obtain_jar; print(obtain_jar())')
cp "$jar" "$1/DynamoDBLocal.jar"
cp -r "$(dirname "$jar")/DynamoDBLocal_lib" "$1/DynamoDBLocal_lib"
