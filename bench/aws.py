"""The aws service, per flavor: start, per-namespace create/check/drop with warm clients, memory.

    python bench/aws.py [N] [FLAVOR...]   # N namespaces (default 20); flavors default: localstack ministack
                                          # writes bench/results/aws.json
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import rss_mb, save, summary, temp_project  # noqa: E402




def run(flavor: str, n: int) -> dict:
    from localdev.cluster import Cluster
    from localdev.config import load
    from localdev.names import Namespace

    home, config, _ = temp_project(["aws"], {"aws": {"flavor": flavor}})
    cluster = Cluster(home=home, config=load(start=config.parent, environ={}))
    cluster.services["aws"].install()  # the venv is a one-time cost, not part of `up`
    out: dict = {}
    t0 = time.perf_counter()
    cluster.up(services=["aws"], agent=False)
    out["up_s"] = time.perf_counter() - t0
    try:
        aws = cluster.services["aws"]
        pid = cluster.runtime.state("aws").pid
        out["rss_ready_mb"] = rss_mb(pid)
        creates, checks, drops = [], [], []
        namespaces = [Namespace.new(f"bench-{i}", "us-east-1", aws.secrets) for i in range(n)]
        for ns in namespaces:
            t = time.perf_counter()
            aws.create_namespace(ns)
            creates.append(time.perf_counter() - t)
            bucket = f"{ns.name}-{ns.secret('aws', 'access_key_id')}"
            with aws.ns_client(ns, "s3") as s3, aws.ns_client(ns, "sqs") as sqs, aws.ns_client(ns, "sns") as sns:
                s3.create_bucket(Bucket=bucket)
                s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 1024)
                sqs.create_queue(QueueName="jobs")
                sns.create_topic(Name="events")
            t = time.perf_counter()
            assert aws.check_namespace(ns) is None
            checks.append(time.perf_counter() - t)
        out["rss_with_namespaces_mb"] = rss_mb(pid)
        for ns in namespaces:
            t = time.perf_counter()
            aws.drop_namespace(ns)
            drops.append(time.perf_counter() - t)
        out.update(create_namespace_s=summary(creates), check_namespace_s=summary(checks),
                   drop_namespace_s=summary(drops))
    finally:
        t0 = time.perf_counter()
        cluster.down(purge=True)
        out["down_s"] = time.perf_counter() - t0
    return out


def main(n: int, flavors: list[str]) -> dict:
    return {"namespaces": n, **{flavor: run(flavor, n) for flavor in flavors}}


if __name__ == "__main__":
    args = sys.argv[1:]
    count = int(args.pop(0)) if args and args[0].isdigit() else 20
    result = main(count, args or ["localstack", "ministack"])
    print(save("aws", result))
    for flavor in [k for k in result if k != "namespaces"]:
        r = result[flavor]
        print(f"{flavor}: up {r['up_s']:.1f}s, RSS {r['rss_ready_mb']:.0f} -> {r['rss_with_namespaces_mb']:.0f} MB "
              f"with {count} namespaces; create p50 {r['create_namespace_s']['p50'] * 1000:.0f} ms, "
              f"check p50 {r['check_namespace_s']['p50'] * 1000:.0f} ms, "
              f"drop p50 {r['drop_namespace_s']['p50'] * 1000:.0f} ms (p95 {r['drop_namespace_s']['p95'] * 1000:.0f}); "
              f"down {r['down_s']:.1f}s")
