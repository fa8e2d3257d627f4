"""Starts the LocalStack runtime with its S3 scratch directory moved under the cluster's state dir.

Run by the LocalStack venv's interpreter (it imports nothing from localdev):
    <venv>/bin/python localstack_launcher.py
with LOCALDEV_S3_TMP_DIR (and LOCALDEV_BIND_HOST) set. LocalStack keeps S3 object bodies in
`DEFAULT_S3_TMP_DIR`, a module constant of `localstack.services.s3.provider` (default
/tmp/localstack-s3-storage, no env var, TMPDIR does not move it): two clusters on one machine would
share it. The constant is read when the S3 provider is created, so setting it right after the module is
imported is enough. Importing that module eagerly costs seconds, so an import hook sets it when LocalStack
loads S3 by itself.
"""

import importlib.abc
import importlib.machinery
import os
import shutil
import sys

S3_MODULE = "localstack.services.s3.provider"


class _SetS3TmpDir(importlib.abc.MetaPathFinder):
    def __init__(self, path):
        self.path = path

    def find_spec(self, fullname, path, target=None):
        if fullname != S3_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader, tmp_dir = spec.loader, self.path
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            module.DEFAULT_S3_TMP_DIR = tmp_dir

        loader.exec_module = exec_and_patch
        return spec


def _bind_twisted_to(host):
    # LocalStack's default (twisted) gateway ignores the host part of GATEWAY_LISTEN for IPv4 and
    # listens on every interface (measured with 2026.3.0): give its endpoints the host instead.
    from twisted.internet import endpoints

    base = endpoints.TCP4ServerEndpoint

    class BoundTCP4ServerEndpoint(base):
        def __init__(self, reactor, port, backlog=50, interface=""):
            super().__init__(reactor, port, backlog, interface or host)

    endpoints.TCP4ServerEndpoint = BoundTCP4ServerEndpoint


def main():
    # This file sits beside localdev's own localstack.py, which would shadow the localstack package.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    tmp_dir = os.environ.get("LOCALDEV_S3_TMP_DIR")
    if not tmp_dir:
        sys.exit("localstack_launcher: LOCALDEV_S3_TMP_DIR is not set")
    # Object bodies left by a killed predecessor belong to state that is gone: never let them pile up.
    shutil.rmtree(tmp_dir, ignore_errors=True)
    os.makedirs(tmp_dir, exist_ok=True)
    sys.meta_path.insert(0, _SetS3TmpDir(tmp_dir))
    _bind_twisted_to(os.environ.get("LOCALDEV_BIND_HOST") or "127.0.0.1")

    from localstack.runtime import main as runtime_main

    runtime_main.main()


if __name__ == "__main__":
    main()
