#!/usr/bin/env bash
# Lint and type-check localdev/ (ruff, mypy; their settings are in pyproject.toml). Needs the test venv:
# bash scripts/bootstrap.sh --test (scripts/test.sh runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m ruff check localdev
.venv/bin/python -m mypy
