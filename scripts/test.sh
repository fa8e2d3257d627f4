#!/usr/bin/env bash
# Run the test suite against real services: installs what it needs first (see bootstrap.sh).
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
if [ -f scripts/engine.sh ]; then
  # A real container engine (Podman's Docker API) for the container runtime's tests.
  eval "$(bash scripts/engine.sh)"
fi
exec .venv/bin/python -m pytest "$@"
