#!/usr/bin/env bash
# Set up localdev on a fresh machine: system packages (when root with apt), a venv in .venv with localdev
# installed, and the service binaries fetched or built into the cache (~/.cache/localdev).
# Idempotent: a second run only checks. Usage: bash scripts/bootstrap.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."
extras="."
[ "${1:-}" = "--test" ] && extras=".[test]"

say() { printf 'bootstrap: %s\n' "$*" >&2; }

apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || { say "please install: $*"; return 0; }
  if [ ! -f /var/lib/apt/lists/.localdev-updated ] || [ -n "$(find /var/lib/apt/lists/.localdev-updated -mmin +1440)" ]; then
    apt-get update -qq && touch /var/lib/apt/lists/.localdev-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# compat: a plain path in a .pth file. The default editable mode installs an import hook that every
# Python start (each `localdev` command) pays for; bench/cli_start.py measures both. If a setuptools
# without compat mode refuses it, the default mode.
.venv/bin/python -m pip install -q -e "$extras" --config-settings editable_mode=compat 2>/dev/null \
  || .venv/bin/python -m pip install -q -e "$extras"

# Each service declares the Debian packages its native runtime needs; ss is for the tests' port checks.
packages=$(.venv/bin/python -m localdev.provision --debian-packages)
read -r -d '' -a need <<< "$packages" || true
command -v ss >/dev/null || need+=(iproute2)
if [ "$extras" = ".[test]" ]; then
  # The tests drive a real headless browser (the dashboard, through playwright, which cannot download its
  # own browser here) and the completion scripts' shells.
  for tool in chromium zsh fish; do command -v "$tool" >/dev/null || need+=("$tool"); done
fi
[ ${#need[@]} -eq 0 ] || { say "installing ${need[*]}"; apt_install "${need[@]}"; }
say "fetching or building the service binaries (cached in ${LOCALDEV_CACHE:-~/.cache/localdev})"
clients=""
if [ "$extras" = ".[test]" ]; then
  say "fetching the clients the tests drive (mongosh, kustomize), meanwhile"
  { .venv/bin/python -c "from localdev.services.mongo.install import mongosh_binary; mongosh_binary()" \
      && { .venv/bin/python -c "from localdev.kustomize import binary; binary()" \
           || say "kustomize could not be built (see above): the kustomize test will skip"; }; } &
  clients=$!
fi
.venv/bin/python -m localdev.provision
[ -z "$clients" ] || wait "$clients"
say "ready: .venv/bin/localdev"
