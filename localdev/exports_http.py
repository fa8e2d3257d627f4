"""The agent's HTTP side of exports, imports, checksums and backups (the work is in exports.py, backups.py).

An export answers with the archive as a chunked stream, made while it is sent; an import takes the archive
as the request body, written to the agent's disk as it arrives. Neither holds the data in memory. The
options of an import travel in the X-Localdev-Import header (JSON), the body being the archive.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import threading
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from localdev import exports
from localdev.errors import BadInput
from localdev.tokens import LOCAL, Principal

IMPORT_HEADER = "x-localdev-import"


def routes(cluster, authenticate: Callable[[Request], Principal] | None, error) -> list[Route]:
    ns = cluster.namespaces

    async def who(request: Request, *roles: str) -> Principal:
        principal = LOCAL if authenticate is None else await run_in_threadpool(authenticate, request)
        principal.need(*roles)
        return principal

    async def export(request: Request):
        folder = None
        try:
            principal = await who(request, "admin", "ci")
            name = request.path_params["name"]
            folder = await run_in_threadpool(exports.export_namespace, cluster, name, principal.owner)
        except Exception as exc:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            return error(exc)
        pipe = exports.archive_chunks(folder, request.query_params.get("compress", "1") == "1")

        async def body():
            try:
                while True:
                    item = await run_in_threadpool(pipe.chunks.get)
                    if isinstance(item, BaseException):
                        raise item  # the answer ends without its last chunk: the client sees it cut off
                    if not item:
                        return
                    yield item
            finally:
                pipe.cancelled.set()
                shutil.rmtree(folder, ignore_errors=True)

        return StreamingResponse(body(), media_type="application/x-tar")

    async def import_(request: Request):
        upload = None
        try:
            principal = await who(request, "admin", "ci")
            try:
                options = json.loads(request.headers.get(IMPORT_HEADER) or "{}")
            except ValueError:
                raise BadInput(f"the {IMPORT_HEADER} header is not JSON") from None
            if not isinstance(options, dict):
                raise BadInput(f"the {IMPORT_HEADER} header must be a JSON object")
            restore = options.get("restore")
            if restore is not None:
                principal.need("admin")  # it sets secrets and owners
                restore = _checked_restore(restore)
            # before the upload is read: a taken name costs no transfer
            await run_in_threadpool(cluster.namespaces.check_free, str(options.get("name", "")), restore)
            upload = exports.new_staging(cluster, "upload")
            archive = upload / "archive"
            with open(archive, "wb") as out:
                async for chunk in request.stream():
                    out.write(chunk)
            label = str(options.get("label") or "the archive")
            result = await _in_own_thread(lambda: exports.import_archive(
                cluster, archive, str(options.get("name", "")), label, ttl=options.get("ttl", "default"),
                labels=options.get("labels"), owner=None if principal is LOCAL else principal.name, restore=restore))
            return JSONResponse(result)
        except Exception as exc:
            return error(exc)
        finally:
            if upload is not None:
                shutil.rmtree(upload, ignore_errors=True)

    def checksum(request, principal):
        return exports.checksums(cluster, request.path_params["name"], principal.owner)

    def registry(request, principal):
        from localdev.backups import registry_rows

        return registry_rows(ns)

    def put_tokens(request, principal, body):
        from localdev.backups import restore_tokens

        return restore_tokens(ns, body)

    def plain(fn, *roles: str, with_body: bool = False):
        async def endpoint(request: Request):
            try:
                principal = await who(request, *roles)
                if with_body:
                    data = await request.body()
                    body = json.loads(data) if data else None
                    return JSONResponse(await run_in_threadpool(fn, request, principal, body))
                return JSONResponse(await run_in_threadpool(fn, request, principal))
            except Exception as exc:
                return error(exc)
        return endpoint

    return [
        Route("/namespaces/{name}/export", export, methods=["GET"]),
        Route("/namespaces/{name}/checksum", plain(checksum, "admin", "ci"), methods=["GET"]),
        Route("/imports", import_, methods=["POST"]),
        Route("/backup/registry", plain(registry, "admin"), methods=["GET"]),
        Route("/backup/tokens", plain(put_tokens, "admin", with_body=True), methods=["POST"]),
    ]


def _checked_restore(restore) -> dict:
    from localdev.names import parse_labels, validate_access_key, validate_max_connections

    if not isinstance(restore, dict) or not isinstance(restore.get("secrets"), dict):
        raise BadInput("a restore needs the namespace's secrets ({group: {key: value}})")
    for group, values in restore["secrets"].items():
        if not isinstance(values, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in values.items()):
            raise BadInput(f"a restore's secrets: group {group!r} must map names to strings")
    if "access_key_id" in restore["secrets"].get("aws", {}):
        validate_access_key(restore["secrets"]["aws"]["access_key_id"])
    if restore.get("max_connections") is not None:
        validate_max_connections(restore["max_connections"])
    if restore.get("owner") is not None and not isinstance(restore["owner"], str):
        raise BadInput("a restore's owner must be a token name")
    if not isinstance(restore.get("region", "us-east-1"), str):
        raise BadInput("a restore's region must be a string")
    env = restore.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise BadInput("a restore's env must map names to strings")
    return {**restore, "labels": parse_labels(restore.get("labels")), "env": env}


async def _in_own_thread(fn):
    """Run `fn` in a thread of its own to the end, even if the client goes away meanwhile (a killed CLI
    leaves a finished import or none, never half of one)."""
    done: queue.Queue = queue.Queue(1)

    def work() -> None:
        try:
            done.put((True, fn()))
        except BaseException as exc:  # handed to the request
            done.put((False, exc))

    threading.Thread(target=work, name=f"import-{os.getpid()}", daemon=True).start()
    while True:
        try:
            ok, value = done.get_nowait()
            break
        except queue.Empty:
            await asyncio.sleep(0.05)
    if not ok:
        raise value
    return value
