"""What a namespace's create and delete ask of mongo-java-server, with 0 and with N namespaces present: each
operation's cost should not grow with the number of databases and users the server holds.

    python bench/mongo_ops.py [--present 500] [--rounds 100]

Our launcher (the compiled MongoJavaServer.java, with localdev's JVM options), started on a fresh data
directory. "Present" namespaces are what a create leaves: a database with a collection of a few documents and
an index, and its user. Each round times, from pymongo as the agent's root client: createUser, a
localdevCopyDatabase of a seeded database (a create from a seed snapshot), dropAllUsersFromDatabase and
dropDatabase (a delete); the server's CPU per round is read from /proc.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import cpu_seconds, save, summary  # noqa: E402

from localdev.ports import free_port  # noqa: E402
from localdev.services.mongo import install_mjs  # noqa: E402
from localdev.waiting import poll_until  # noqa: E402

OPS = ("createUser", "localdevCopyDatabase", "dropAllUsersFromDatabase", "dropDatabase")


def add_namespace(client, db: str, password: str) -> None:
    client[db].command("createUser", db, pwd=password, roles=[{"role": "readWrite", "db": db}])
    client[db].items.insert_many([{"_id": i, "k": i % 3} for i in range(5)])
    client[db].items.create_index("k")


def one_step(client, op: str, db: str, password: str) -> None:
    if op == "createUser":
        client[db].command("createUser", db, pwd=password, roles=[{"role": "readWrite", "db": db}])
    elif op == "localdevCopyDatabase":
        client.admin.command("localdevCopyDatabase", **{"from": "seed", "to": db})
    elif op == "dropAllUsersFromDatabase":
        client[db].command("dropAllUsersFromDatabase")
    else:
        client.drop_database(db)


def measure(client, proc: subprocess.Popen, rounds: int, tag: str) -> dict:
    password = secrets.token_hex(16)
    times: dict[str, list[float]] = {op: [] for op in OPS}
    cpu0 = cpu_seconds([proc.pid])
    for i in range(rounds):
        for op in OPS:
            t0 = time.perf_counter()
            one_step(client, op, f"ns_{tag}_{i}", password)
            times[op].append(time.perf_counter() - t0)
    cpu_ms = (cpu_seconds([proc.pid]) - cpu0) / rounds * 1000
    return {"ops": {op: summary(values) for op, values in times.items()}, "server_cpu_ms_per_round": cpu_ms}


def main() -> None:
    import pymongo

    parser = argparse.ArgumentParser()
    parser.add_argument("--present", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    install = install_mjs.provision()
    work = Path(tempfile.mkdtemp(prefix="localdev-bench-mongo-"))
    port, root = free_port(), secrets.token_hex(16)
    argv = [install.java, "-Xmx256m", *install_mjs.JVM_OPTIONS, "-cp",
            install_mjs.class_path(install.launcher, install.lib_dir), install_mjs.LAUNCHER_MAIN,
            "--host", "127.0.0.1", "--port", str(port), "--data", str(work / "mongo.mv.db"),
            "--users", str(work / "users"), "--cache-mb", "64"]
    env = {**os.environ, "LOCALDEV_MONGO_ROOT_USER": "localdev", "LOCALDEV_MONGO_ROOT_PASSWORD": root}
    with open(work / "log", "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    results = {}
    try:
        client = pymongo.MongoClient(f"mongodb://localdev:{root}@127.0.0.1:{port}/?authSource=admin",
                                     serverSelectionTimeoutMS=500)
        poll_until(lambda: _answers(client), 60, "the server")
        client.seed.items.insert_many([{"_id": i, "k": i % 3} for i in range(30)])
        client.seed.items.create_index("k")
        measure(client, proc, 100, "warm")  # the JIT's first passes
        results["0"] = measure(client, proc, args.rounds, "empty")
        for i in range(args.present):
            add_namespace(client, f"ns_present_{i}", secrets.token_hex(16))
        results[str(args.present)] = measure(client, proc, args.rounds, "full")
        client.close()
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"mongo-java-server, p50 ms per operation with 0 and {args.present} namespaces present "
          f"({args.rounds} rounds each)")
    print(f"{'operation':28} {'0':>8} {args.present:>8}   ratio")
    for op in OPS:
        a, b = results["0"]["ops"][op]["p50"] * 1000, results[str(args.present)]["ops"][op]["p50"] * 1000
        print(f"{op:28} {a:8.2f} {b:8.2f}   {b / a:.2f}x")
    a, b = results["0"]["server_cpu_ms_per_round"], results[str(args.present)]["server_cpu_ms_per_round"]
    print(f"{'server CPU per round':28} {a:8.1f} {b:8.1f}   {b / a:.2f}x")
    print(f"wrote {save('mongo_ops', {'present': args.present, 'rounds': args.rounds, 'results': results})}")


def _answers(client) -> bool:
    import pymongo

    try:
        return client.admin.command("ping").get("ok") == 1
    except pymongo.errors.PyMongoError:
        return False


if __name__ == "__main__":
    main()
