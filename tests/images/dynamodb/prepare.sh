#!/usr/bin/env bash
# Stage the DynamoDB Local jar localdev obtains for the native runtime (cached).
set -euo pipefail
"$PYTHON" -c "import localdev.services.dynamodb.install" 2>/dev/null || { echo "localdev.services.dynamodb.install is not in this checkout" >&2; exit 1; }
jar=$("$PYTHON" -c 'from localdev.services.dynamodb.install import obtain_jar; print(obtain_jar())')
cp "$jar" "$1/DynamoDBLocal.jar"
cp -r "$(dirname "$jar")/DynamoDBLocal_lib" "$1/DynamoDBLocal_lib"
