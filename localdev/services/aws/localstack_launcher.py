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
import threading

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


def _parse_botocore_data_once():
    # botocore parses its endpoints file (over a megabyte of JSON) once per Session, and a service's model to
    # list its regions, and LocalStack makes a new Session for each service's valid regions and for its region
    # check, all first needed by a service's first request: a new cluster's first requests, which come at
    # once, each parsed them again holding the GIL (over half of LocalStack's CPU in the first seeded create).
    # What they answer comes from botocore's own files, which do not change while the process runs: each is
    # parsed once (a caller waits for one being parsed rather than parse beside it). The endpoints data is
    # only read (by botocore's EndpointResolver); region lists are handed out as copies.
    from botocore import loaders, session

    lock = threading.RLock()

    def once(method, key_of, copy=lambda value: value):
        done = {}

        def wrapper(self, *args, **kwargs):
            key = key_of(self, *args, **kwargs)
            if key is None:
                return method(self, *args, **kwargs)
            with lock:
                if key not in done:
                    done[key] = method(self, *args, **kwargs)
                return copy(done[key])

        return wrapper

    loaders.Loader.load_data_with_path = once(
        loaders.Loader.load_data_with_path,
        lambda self, name: (tuple(self.search_paths), name) if name == "endpoints" else None)
    data_path = lambda self: self.get_config_variable("data_path")  # noqa: E731  (AWS_DATA_PATH)
    session.Session.get_available_regions = once(
        session.Session.get_available_regions,
        lambda self, *args, **kwargs: (data_path(self), args, tuple(sorted(kwargs.items()))), list)
    session.Session.get_available_partitions = once(
        session.Session.get_available_partitions, lambda self: (data_path(self),), list)


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
    _parse_botocore_data_once()

    from localstack.runtime import main as runtime_main

    runtime_main.main()


if __name__ == "__main__":
    main()
