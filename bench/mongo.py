"""The mongo service (FerretDB v1.24.2 on the cluster's PostgreSQL): start, per-namespace create/drop,
memory and PostgreSQL connections as namespaces are used.

    python bench/mongo.py [N]        # N namespaces (default 30); writes bench/results/mongo.json
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import rss_mb, save, summary, temp_project  # noqa: E402




def main(n: int) -> dict:
    import pymongo

    from localdev.cluster import Cluster
    from localdev.config import load
    from localdev.names import Namespace

    home, config, _ = temp_project(["postgres", "mongo"])
    cluster = Cluster(home=home, config=load(start=config.parent, environ={}))
    out: dict = {"namespaces": n}
    t0 = time.perf_counter()
    cluster.up(services=["postgres", "mongo"], agent=False)
    out["up_cold_s"] = time.perf_counter() - t0
    try:
        mongo, pg, runtime = cluster.services["mongo"], cluster.services["postgres"], cluster.runtime
        runtime.stop("mongo", cluster.spec("mongo"))
        t0 = time.perf_counter()
        cluster.start_service("mongo")  # process start, first ping as localdev's role, metadata check
        out["ferretdb_restart_to_ready_s"] = time.perf_counter() - t0
        pid = runtime.state("mongo").pid
        out["rss_idle_mb"] = rss_mb(pid)
        spaces = [Namespace.new(f"bench-{i}", "us-east-1", pg.secrets + mongo.secrets) for i in range(n)]
        for ns in spaces:
            pg.create_namespace(ns)
        created = []
        for ns in spaces:
            t0 = time.perf_counter()
            mongo.create_namespace(ns)
            created.append((time.perf_counter() - t0) * 1000)
        out["create_namespace_ms"] = summary(created)

        def use(ns):
            with pymongo.MongoClient(mongo.namespace_env(ns)["MONGODB_URI"]) as client:
                db = client.get_default_database()
                db.t.insert_many([{"i": i} for i in range(10)])
                return db.t.count_documents({})

        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            assert all(count == 10 for count in pool.map(use, spaces))
        out["all_namespaces_insert10_count_8threads_s"] = time.perf_counter() - t0
        out["rss_after_use_mb"] = rss_mb(pid)
        with pg.connect() as conn:
            out["pg_connections_of_ferretdb"] = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'FerretDB'").fetchone()[0]
        dropped = []
        for ns in spaces:
            t0 = time.perf_counter()
            mongo.drop_namespace(ns)
            dropped.append((time.perf_counter() - t0) * 1000)
            pg.drop_namespace(ns)
        out["drop_namespace_ms"] = summary(dropped)
        out["rss_after_drop_mb"] = rss_mb(pid)
    finally:
        cluster.namespaces.close()
        cluster.down(purge=True)
    return out


if __name__ == "__main__":
    result = main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
    print(save("mongo", result).read_text())
