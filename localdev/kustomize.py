"""kustomize, the renderer behind `kubectl apply -k`, pinned and built once from the Go module proxy into the
user's cache: the tests render deploy/kubernetes with it exactly as kubectl would, and validate the result.

    python -c "from localdev.kustomize import binary; print(binary())"
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from localdev.services.install import ProvisionError, build_lock, cache_dir, progress, run, which

MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
VERSION = "v5.4.3"  # the v5.4 line, which kubectl 1.31 embeds


def binary(version: str = VERSION) -> Path:
    """The cached kustomize `version`, built with `go install` on first use."""
    target = cache_dir("kustomize", version) / "kustomize"
    if target.exists():
        return target
    go = which("go")
    if not go:
        raise ProvisionError("Go is not installed, so kustomize cannot be built from source: install Go, or "
                             f"put a kustomize {version} binary at {target}")
    with build_lock(target):
        if not target.exists():
            progress(f"building kustomize {version} from the Go module proxy (a few minutes, once)")
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                run([go, "install", f"{MODULE}@{version}"], env={**os.environ, "GOBIN": tmp, "CGO_ENABLED": "0"},
                    what="go install kustomize", timeout=1800)
                os.replace(Path(tmp, "kustomize"), target)
    return target
