"""What the AWS gateway costs, side by side in one run: the same boto3 calls through the gateway (the ports
`ns env` gives) and straight to the back end behind it (its private loopback port, same key), interleaved
call by call so both see the same machine load.

    python bench/gateway.py [--flavor ministack] [--rounds 300] [--big-rounds 20] [--threads 8] [--seconds 5]

Per operation (GetItem, PutObject 1 KB and 8 MB, SendMessage): p50/p99 of each path and the added latency
(gateway - direct); then requests per second with --threads clients for --seconds (GetItem), and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import pct, save, temp_project  # noqa: E402


def clients(env: dict, dynamodb_url: str, aws_url: str):
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])
    config = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}, max_pool_connections=32)
    return (session.client("dynamodb", endpoint_url=dynamodb_url, config=config),
            session.client("s3", endpoint_url=aws_url, config=config),
            session.client("sqs", endpoint_url=aws_url, config=config))


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def figures(gateway: list[float], direct: list[float]) -> dict:
    out = {}
    for q in (50, 99):
        g, d = pct(gateway, q) * 1e3, pct(direct, q) * 1e3
        out[f"p{q}"] = {"gateway_ms": round(g, 3), "direct_ms": round(d, 3), "added_ms": round(g - d, 3)}
    return out


def check_cpu(env: dict, rounds: int = 3000) -> float:
    """The gateway's own work for one GetItem (parse, SigV4 check, classification, re-signing), in-process:
    what it adds without the extra hop and the scheduling a busy machine adds to it (seconds)."""
    import hashlib
    import urllib.parse

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from localdev.gateway import classify, sigv4
    from localdev.gateway.http import parse_head

    body = b'{"TableName": "bench", "Key": {"pk": {"S": "k"}}}'
    request = AWSRequest("POST", "http://127.0.0.1:8000/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem"})
    credentials = Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    SigV4Auth(credentials, "dynamodb", "us-east-1").add_auth(request)
    prepared = request.prepare()
    raw = b"POST / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n" + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in prepared.headers.items()) + b"\r\n"
    t0 = time.perf_counter()
    for _ in range(rounds):
        head = parse_head(raw)
        signed = sigv4.parse(head.lower, urllib.parse.parse_qsl(head.query, keep_blank_values=True))
        assert signed is not None
        canonical = sigv4.canonical_request(head.method, head.path, head.query, head.header_list, signed,
                                            hashlib.sha256(body).hexdigest())
        text = sigv4.string_to_sign(signed, canonical)
        assert sigv4.matches(sigv4.sign(env["AWS_SECRET_ACCESS_KEY"], signed, text), signed.signature)
        classify.classify("dynamodb", head.method, head.path, head.query, head.lower, body, ())
        sigv4.sign("test", signed, text)
    return (time.perf_counter() - t0) / rounds


def throughput(call, threads: int, seconds: float) -> float:
    done = [0] * threads
    stop = time.perf_counter() + seconds

    def work(i: int) -> None:
        while time.perf_counter() < stop:
            call()
            done[i] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done) / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flavor", default="ministack")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--big-rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    from localdev.cluster import Cluster
    from localdev.config import load

    services = ["postgres", "dynamodb", "aws"]
    home, config, _ = temp_project(services, {"aws": {"flavor": args.flavor}})
    cluster = Cluster(home=home, config=load(start=config.parent, environ={}))
    cluster.up(services=services, agent=False)
    try:
        cluster.namespaces.create("bench")
        env = cluster.namespaces.env("bench")
        ddb_svc, aws_svc = cluster.services["dynamodb"], cluster.services["aws"]
        via = clients(env, env["AWS_ENDPOINT_URL_DYNAMODB"], env["AWS_ENDPOINT_URL"])
        direct = clients(env, ddb_svc.endpoint, aws_svc.endpoint)
        ddb, s3, sqs = via
        ddb.create_table(TableName="bench", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST")
        ddb.put_item(TableName="bench", Item={"pk": {"S": "k"}, "v": {"S": "x" * 100}})
        s3.create_bucket(Bucket="bench-b")
        queue = sqs.create_queue(QueueName="bench")["QueueUrl"]
        direct_queue = queue.replace(env["AWS_ENDPOINT_URL"], aws_svc.endpoint)
        small, big = os.urandom(1024), os.urandom(8 << 20)
        ops = {
            "GetItem": (lambda c: c[0].get_item(TableName="bench", Key={"pk": {"S": "k"}}), args.rounds),
            "PutObject 1 KB": (lambda c: c[1].put_object(Bucket="bench-b", Key="small", Body=small), args.rounds),
            "PutObject 8 MB": (lambda c: c[1].put_object(Bucket="bench-b", Key="big", Body=big), args.big_rounds),
            "SendMessage": (lambda c: c[2].send_message(QueueUrl=queue if c is via else direct_queue,
                                                        MessageBody="m" * 200), args.rounds),
        }
        results: dict = {"flavor": args.flavor, "latency": {}, "throughput": {}}
        for name, (call, rounds) in ops.items():
            for _ in range(5):  # warm both paths (connections, the back end's caches)
                call(via)
                call(direct)
            g, d = [], []
            for _ in range(rounds):
                g.append(timed(lambda: call(via)))  # noqa: B023
                d.append(timed(lambda: call(direct)))  # noqa: B023
            results["latency"][name] = {"rounds": rounds, **figures(g, d)}
            f = results["latency"][name]
            print(f"{name:15} p50 gateway {f['p50']['gateway_ms']:8.2f} ms  direct {f['p50']['direct_ms']:8.2f} ms  "
                  f"added {f['p50']['added_ms']:6.2f} ms | p99 added {f['p99']['added_ms']:6.2f} ms")
        get = ops["GetItem"][0]
        rps_gateway = throughput(lambda: get(via), args.threads, args.seconds)
        rps_direct = throughput(lambda: get(direct), args.threads, args.seconds)
        results["throughput"] = {"operation": "GetItem", "threads": args.threads, "seconds": args.seconds,
                                 "gateway_rps": round(rps_gateway, 1), "direct_rps": round(rps_direct, 1),
                                 "ratio": round(rps_gateway / rps_direct, 3)}
        print(f"GetItem with {args.threads} threads: {rps_gateway:.0f} req/s through the gateway, {rps_direct:.0f} "
              f"direct ({rps_gateway / rps_direct:.0%})")
        cpu = check_cpu(env)
        results["check_cpu_us"] = round(cpu * 1e6, 1)
        results["load_average"] = os.getloadavg()
        print(f"the gateway's own checks per GetItem, in-process: {cpu * 1e6:.0f} us; "
              f"load average during the run {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"saved {save('gateway', results)}")
    finally:
        cluster.namespaces.close()
        cluster.down(purge=True)


if __name__ == "__main__":
    main()
