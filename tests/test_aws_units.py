"""Pure logic of the AWS service: seed validation, interpreter discovery, the specs it hands the runtimes."""

import json
import os
import sys

import pytest

from localdev.errors import BadInput
from localdev.services.aws import install as prov
from localdev.services.aws.seeds import load
from localdev.services.aws import LOCALSTACK_IMAGE, MINISTACK_IMAGE, Aws
from localdev.services.base import ServiceContext
from localdev.state import StateDir


def seeds(tmp_path, files: dict) -> "os.PathLike":
    root = tmp_path / "aws"
    root.mkdir()
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_seeds_parse_buckets_objects_and_queues(tmp_path):
    root = seeds(tmp_path, {"s3/assets/a.txt": "a", "s3/assets/deep/b.json": "{}",
                            "sqs.json": json.dumps([{"name": "jobs", "attributes": {"VisibilityTimeout": 30}},
                                                    {"name": "o.fifo"}])})
    parsed = load(root)
    assert [k for k, _ in parsed["buckets"]["assets"]] == ["a.txt", "deep/b.json"]
    assert parsed["queues"] == [{"name": "jobs", "attributes": {"VisibilityTimeout": "30"}},
                                {"name": "o.fifo", "attributes": {"FifoQueue": "true"}}]


@pytest.mark.parametrize("files, message", [
    ({"s3/Bad_Bucket/a": "x"}, "is not a valid S3 bucket name"),
    ({"s3/stray.txt": "x"}, "one folder per bucket"),
    ({"sns.json": "[]"}, "unexpected entry"),
    ({"sqs.json": '[\n{"name": "a"},\n{"name": }]'}, "sqs.json:3: invalid JSON"),
    ({"sqs.json": '{"name": "a"}'}, "expected a list of queues"),
    ({"sqs.json": '[{"name": "a b"}]'}, "queue 1: invalid queue name"),
    ({"sqs.json": '[{"name": "a"}, {"name": "a"}]'}, "queue 2: queue 'a' appears twice"),
    ({"sqs.json": '[{"name": "a", "attributes": {"X": 1.5}}]'}, "must map attribute names"),
    ({"sqs.json": '[{"name": "a", "colour": "red"}]'}, "expected an object with keys"),
])
def test_bad_seeds_name_the_file_and_problem(tmp_path, files, message):
    with pytest.raises(BadInput, match=message.replace("(", r"\(")):
        load(seeds(tmp_path, files))


def test_explicit_interpreter_must_be_new_enough_and_runnable(monkeypatch):
    monkeypatch.setenv(prov.PYTHON_ENV, sys.executable)
    if sys.version_info < (3, 13):
        with pytest.raises(BadInput, match=r"needs Python >= 3.13"):
            prov.find_python()
    with pytest.raises(BadInput, match="does not run as a Python interpreter"):
        prov.find_python("/nonexistent/python3.13")
    # the config option wins over the environment
    assert prov.find_python(sys.executable, minimum=(3, 10)) == sys.executable


def test_half_built_venv_is_not_taken_as_built(tmp_path):
    venv = tmp_path / "v"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    assert not prov.is_built(venv)
    (venv / prov.STAMP).write_text("x")
    assert prov.is_built(venv)



def test_a_built_localstack_venv_is_taken_without_running_any_interpreter(tmp_path, monkeypatch):
    monkeypatch.setattr(prov, "cache_dir", lambda *parts: tmp_path.joinpath(*parts))
    monkeypatch.delenv(prov.PYTHON_ENV, raising=False)
    for name, stamp in ((f"{prov.LOCALSTACK_VERSION}-py3.13", True), (f"{prov.LOCALSTACK_VERSION}-py3.14", True),
                        (f"{prov.LOCALSTACK_VERSION}-py3.15", False), ("0.9-py3.20", True)):
        venv = tmp_path / "localstack" / name
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").write_text("")
        if stamp:
            (venv / prov.STAMP).write_text("x")
    probed = []
    monkeypatch.setattr(prov, "python_version", lambda exe: probed.append(exe) or (3, 13))
    venv, python = prov.localstack_venv()
    assert venv.name == f"{prov.LOCALSTACK_VERSION}-py3.14" and python == str(venv / "bin" / "python")
    assert probed == []  # half-built py3.15 and another version's venv are passed over, nothing was run
    # an interpreter the user named is still checked, and decides the venv
    venv, python = prov.localstack_venv(sys.executable)
    assert probed == [sys.executable, sys.executable] and venv.name == f"{prov.LOCALSTACK_VERSION}-py3.13"

def make(tmp_path, **options) -> Aws:
    opts = {"enabled": True, "port": 24566, **{k: o.default for k, o in Aws.options.items()}, **options}
    return Aws(ServiceContext(state=StateDir(tmp_path), host="127.0.0.1", runtime="docker", options=opts))


def test_container_specs_pin_the_open_source_images(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCALSTACK_AUTH_TOKEN", "tok")
    spec = make(tmp_path).container_spec()
    assert spec.image == LOCALSTACK_IMAGE == "localstack/localstack:4.14.0"
    assert spec.ports == {4566: 24566} and "LOCALSTACK_AUTH_TOKEN" not in spec.env
    assert spec.env["SQS_DISABLE_CLOUDWATCH_METRICS"] == "1"
    assert make(tmp_path, sqs_metrics=True).container_spec().env["SQS_DISABLE_CLOUDWATCH_METRICS"] == "0"
    newer = make(tmp_path, image="localstack/localstack:latest").container_spec()
    assert newer.env["LOCALSTACK_AUTH_TOKEN"] == "tok"
    mini = make(tmp_path, flavor="ministack").container_spec()
    assert mini.image == MINISTACK_IMAGE and mini.env["PERSIST_STATE"] == "0"


class _Emulator:
    """What AccountCopier.lost asks of the service: which start of the emulator runs, and its store's buckets."""

    def __init__(self, instance, held):
        self._instance, self.held, self.listed = instance, held, 0

    def instance(self):
        return self._instance

    def client(self, service, key, secret, region):
        from contextlib import contextmanager

        emulator = self

        class Store:
            def list_buckets(self):
                emulator.listed += 1
                return {"Buckets": [{"Name": b} for b in emulator.held]}

        return contextmanager(lambda: (yield Store()))()


@pytest.mark.parametrize("taken, running, held, listed, lost", [
    ("11@5.0", "11@5.0", [], 0, False),  # the start that took the copies holds them: nobody is asked
    ("11@5.0", "12@9.0", ["ldsnap-s-0"], 1, False),  # restarted: listed, and there
    ("11@5.0", "12@9.0", [], 1, True),  # restarted: listed, and gone
    (None, None, [], 1, True),  # a runtime that cannot tell (containers, external): listed
    ("11@5.0", None, ["ldsnap-s-0"], 1, False),
])
def test_a_snapshots_bucket_copies_are_listed_only_when_the_emulator_may_have_restarted(taken, running, held,
                                                                                        listed, lost):
    from localdev.services.aws.snapshot import AccountCopier

    emulator = _Emulator(running, held)
    part = {"buckets": [{"rest": "docs", "store": "ldsnap-s-0"}], "queues": [], "topics": [],
            **({"instance": taken} if taken else {})}
    why = AccountCopier(emulator).lost("s", part)
    assert emulator.listed == listed
    assert (why == "the AWS emulator no longer holds its copy of 1 of its 1 buckets (it keeps no state across a "
                   "restart, and was restarted since the snapshot was taken)") if lost else why is None


def test_the_agents_small_uploads_do_not_wait_for_100_continue(tmp_path):
    """botocore asks for `100-continue` before every S3 upload of a file: a round trip more per seed object.
    The agent's clients send a small body at once and keep the wait for a big one (the request is caught
    before it is sent: what is checked is what botocore would put on the wire)."""
    import io

    from botocore.awsrequest import AWSResponse
    from botocore.config import Config

    from localdev.services.aws_clients import SMALL_BODY, WarmClients

    sent: list[dict] = []

    def capture(request, **_):
        sent.append(dict(request.headers))
        response = AWSResponse(request.url, 200, {}, None)
        response._content = b""
        return response

    clients = WarmClients()
    with clients.lease("s3", endpoint="http://127.0.0.1:9", key="AKIDEXAMPLE", secret="secret",
                       region="us-east-1", config=Config()) as s3:
        s3.meta.events.register("before-send.s3", capture)
        small = tmp_path / "small.txt"
        small.write_bytes(b"x" * 100)
        with open(small, "rb") as body:
            s3.put_object(Bucket="b", Key="small", Body=body)
        s3.put_object(Bucket="b", Key="bytes", Body=b"y" * 10)
        s3.put_object(Bucket="b", Key="big", Body=io.BytesIO(b"z" * (SMALL_BODY + 1)))
    clients.close()
    assert [h.get("Expect") for h in sent] == [None, None, b"100-continue"]


BOTOCORE_PROBE = r"""
import json, sys, threading
sys.path.insert(0, sys.argv[1])
from botocore import loaders
import boto3

parses = []
load_file = loaders.JSONFileLoader.load_file
loaders.JSONFileLoader.load_file = lambda self, path: (parses.append(path), load_file(self, path))[1]
if sys.argv[2] == "patched":
    import localstack_launcher
    localstack_launcher._parse_botocore_data_once()

answers = {}
def ask(n):  # what LocalStack's region checks ask, each in a Session of its own, all at once
    session = boto3.Session()
    regions = {s: session.get_available_regions(s) for s in ("s3", "sqs", "sns", "events")}
    regions["cloudwatch/aws-cn"] = session.get_available_regions("cloudwatch", partition_name="aws-cn")
    answers[n] = {"regions": regions, "partitions": session.get_available_partitions()}
    regions["s3"].append("mutated-by-a-caller")
threads = [threading.Thread(target=ask, args=(n,)) for n in range(6)]
[t.start() for t in threads]
[t.join() for t in threads]
boto3.Session().client("s3", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
print(json.dumps({"answers": [answers[n] for n in range(6)],
                  "endpoint_parses": sum(p.endswith("/endpoints") for p in parses),
                  "s3_model_parses": sum(p.endswith("s3/2006-03-01/service-2") for p in parses)}))
"""


def test_localstack_parses_botocores_endpoints_and_region_lists_once_and_answers_as_before():
    """The launcher's patch, in LocalStack's own interpreter and botocore: six Sessions asking at once parse
    the endpoints file once (not once each) and answer what unpatched botocore answers; a caller that changes
    the list it was given changes nobody else's."""
    import subprocess
    from pathlib import Path

    python = str(prov.localstack_python())
    launcher_dir = str(Path(prov.__file__).parent)
    runs = {}
    for mode in ("plain", "patched"):
        out = subprocess.run([python, "-I", "-c", BOTOCORE_PROBE, launcher_dir, mode], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        runs[mode] = json.loads(out.stdout)
    plain, patched = runs["plain"], runs["patched"]
    assert plain["endpoint_parses"] >= 6 and plain["s3_model_parses"] >= 6  # what the patch is for
    assert patched["endpoint_parses"] == 1
    assert patched["s3_model_parses"] == 2  # one for the region list, one for the client's own model
    assert patched["answers"] == plain["answers"]
    first = patched["answers"][0]["regions"]
    assert "us-east-1" in first["sqs"] and "cn-north-1" in first["cloudwatch/aws-cn"]
    assert all("mutated-by-a-caller" not in a["regions"]["s3"][:-1] for a in patched["answers"])
