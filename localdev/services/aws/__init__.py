"""The AWS emulator: LocalStack (default) or MiniStack on one endpoint; a namespace is a 12-digit account.

Both emulators map a 12-digit access key id to an AWS account, so S3, SQS, SNS (and the rest) are listed
per namespace. What they do NOT enforce (measured, see the README): S3 bucket names are global across
accounts (409), LocalStack lets any account read and write another's bucket (MiniStack answers 403), and
both deliver to another account's queue or topic given its URL or ARN.

Neither keeps state across a restart here (LocalStack open-source cannot; MiniStack's persistence is left
off because after a `kill -9` it would bring back a stale snapshot, i.e. lose changes silently). So each
namespace gets a marker (an EventBridge bus in its account) and `check_namespace` reports when the marker
is gone; `localdev seed NAME` (or creating the namespace again) puts it back.

Example::

    from localdev.cluster import Cluster
    cluster = Cluster()
    cluster.up(services=["postgres", "aws"])
    cluster.namespaces.create("demo")
    env = cluster.namespaces.env("demo")
    # boto3.client("sqs") with env's AWS_* variables creates queues in the account env["AWS_ACCESS_KEY_ID"]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from contextlib import ExitStack
from functools import partial
from pathlib import Path

from localdev.errors import BadInput, LocalDevError
from localdev.runtimes.base import ContainerSpec, ProcessSpec
from localdev.services import aws_clients
from localdev.services.aws_clients import WarmClients, access_key_id, error_code
from localdev.services.base import Check, Option, PytestClient, Resources, Service
from localdev.undo import Undo, undoing

LOCALSTACK_IMAGE = "localstack/localstack:4.14.0"  # the last Apache-2.0 image; later ones need an auth token
MINISTACK_IMAGE = "ministackorg/ministack:1.5.33"
HEALTH = {"localstack": "/_localstack/health", "ministack": "/_ministack/health"}
# The marker is an EventBridge bus: rarely listed by apps (unlike buckets or queues), and cheap in both
# emulators: EventBridge is LocalStack's own provider, while an SSM parameter (a moto backend) loads defaults
# per account, slow and memory-hungry (bench/results/design-measurements.md).
MARKER = "localdev-namespace"


def _lost_message(ns_name: str) -> str:
    return (f"aws: namespace {ns_name} lost its buckets, queues and topics when the emulator restarted "
            f"(it keeps state in memory): run `localdev seed {ns_name} --service aws` to restore them")


class Aws(Service):
    name = "aws"
    url_schemes = ("http", "https")
    default_port = 4566
    env_keys = ("AWS_ENDPOINT_URL", *aws_clients.CREDENTIAL_KEYS)
    secrets = aws_clients.SECRETS
    loses_state_on_restart = True  # see the module's docstring: neither flavor keeps state here
    behind_gateway = "s3"
    options = {
        **aws_clients.GATEWAY_OPTIONS,
        "flavor": Option("localstack", str, ("localstack", "ministack"), help="which emulator"),
        "python": Option("", str, help="a Python >= 3.13 for LocalStack (default: PATH, then pyenv)"),
        "image": Option("", str, help="container image (default: the flavor's pinned image)"),
        "sqs_metrics": Option(False, bool, help="LocalStack: publish each queue's SQS metrics to CloudWatch, "
                                                "every minute and at each message sent, received or deleted"),
    }
    ready_timeout = 90.0  # LocalStack's first start loads its providers, slowly on a small shared machine

    def __init__(self, ctx):
        super().__init__(ctx)
        self._clients = WarmClients()
        self._python: Path | None = None

    @property
    def flavor(self) -> str:
        return self.option("flavor")

    @property
    def endpoint(self) -> str:
        """The emulator itself, behind the gateway (localdev's own clients: seeding, readiness)."""
        return aws_clients.server_url(self)

    @property
    def public_host(self) -> str:
        """host:port of the gateway as clients name it (the emulator puts it in the queue URLs it makes)."""
        return f"{self.ctx.advertise_host or self.host}:{self.port}"

    def serves_tls(self) -> bool:
        return True  # the gateway terminates TLS in front of it, on every runtime

    # -- obtaining it -----------------------------------------------------------
    def _venv_python(self) -> Path:
        """The emulator venv's interpreter, installing it on first use (resolved once per process)."""
        if self._python is None:
            from localdev.services.aws import install as prov

            if self.flavor == "localstack":
                self._python = prov.localstack_python(self.option("python") or None)
            else:
                self._python = prov.ministack_python(self.option("python") or None)
        return self._python

    def _spec_python(self) -> str:
        # `down` asks for the spec only to learn how to stop: it must neither install nor fail because an
        # interpreter went missing. A start always runs provision() first, which raises the actionable error.
        if self._python is not None:
            return str(self._python)
        from localdev.services.aws import install as prov

        try:
            find = prov.localstack_venv if self.flavor == "localstack" else prov.ministack_venv
            return str(prov.venv_python(find(self.option("python") or None)[0]))
        except LocalDevError:
            return "python3"

    def install(self) -> None:
        self._venv_python()

    def provision(self) -> None:
        self.install()
        for sub in ("tmp", "s3", "state", "cache", "config", "fs"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        if self.flavor == "localstack":
            from localdev.services.aws.install import service_catalog

            catalog = service_catalog(self._venv_python())
            static = self.data_dir / "fs" / "usr" / "lib" / "localstack"
            if not (static / catalog.name).exists():
                static.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(catalog, static / catalog.name)

    # -- running -----------------------------------------------------------------
    def native_spec(self) -> ProcessSpec:
        data = self.data_dir
        common = {
            "TMPDIR": str(data / "tmp"),
            # The emulator's own Lambda/Glue helpers call back here; never the user's AWS_ENDPOINT_URL.
            "AWS_ENDPOINT_URL": self.endpoint,
        }
        if self.flavor == "localstack":
            launcher = Path(__file__).resolve().parent / "localstack_launcher.py"
            # -I: the user's PYTHONPATH (or a project's own `localstack` module) must not leak into the venv.
            argv = [self._spec_python(), "-I", str(launcher)]
            env = {
                "GATEWAY_LISTEN": f"{self.bind_host}:{self.backend_port}",
                "LOCALDEV_BIND_HOST": self.bind_host,
                "LOCALSTACK_HOST": self.public_host,  # queue URLs name the gateway's port
                "SQS_ENDPOINT_STRATEGY": "path",
                "OVERRIDE_IN_DOCKER": "0",
                "FILESYSTEM_ROOT": str(data / "fs"),
                "XDG_CACHE_HOME": str(data / "cache"),
                "CONFIG_DIR": str(data / "config"),  # not ~/.localstack: no user profile leaks in
                "LOCALDEV_S3_TMP_DIR": str(data / "s3"),
                "DNS_ADDRESS": "0",
                "SKIP_SSL_CERT_DOWNLOAD": "1",
                "DISABLE_EVENTS": "1",  # no analytics
                **self._localstack_sqs_env(),
                # LocalStack reads TMPDIR (and warns it is deprecated); Python's tempfile needs it.
            }
            # It sometimes hangs on SIGTERM (a scheduler thread), and nothing is lost by a SIGKILL that a clean
            # stop would keep (it has no persistence).
            stop_timeout = 5.0
        else:
            argv = [self._spec_python(), "-I", "-m", "ministack"]
            env = {
                "GATEWAY_PORT": str(self.backend_port),
                "BIND_HOST": self.bind_host,  # (queue URLs take the Host header, which the gateway passes on)
                "STATE_DIR": str(data / "state"),
                "S3_DATA_DIR": str(data / "s3"),
                "PERSIST_STATE": "0",
                "S3_PERSIST": "0",
            }
            stop_timeout = 5.0
        return ProcessSpec(argv=argv, env={**common, **env}, cwd=data, ports=[self.backend_port],
                           stop_signal=signal.SIGTERM, stop_timeout=stop_timeout)

    def _localstack_sqs_env(self) -> dict[str, str]:
        # On by default in LocalStack: every minute, for every account holding queues, an internal CloudWatch
        # client puts three data points per queue into a metrics database on disk that nothing ever trims (and
        # one more put per message sent, received or deleted). A shared cluster with hundreds of namespaces
        # paid for it in idle CPU and a database growing by every queue each minute, for metrics few dev
        # setups read. docs/aws.md says how to turn it on.
        return {"SQS_DISABLE_CLOUDWATCH_METRICS": "0" if self.option("sqs_metrics") else "1"}

    def image(self) -> str:
        return self.option("image") or (LOCALSTACK_IMAGE if self.flavor == "localstack" else MINISTACK_IMAGE)

    def container_spec(self) -> ContainerSpec:
        health = f"http://127.0.0.1:4566{HEALTH[self.flavor]}"
        if self.flavor == "localstack":
            env = {"LOCALSTACK_HOST": self.public_host,
                   "SQS_ENDPOINT_STRATEGY": "path",
                   "SKIP_SSL_CERT_DOWNLOAD": "1", "DISABLE_EVENTS": "1", **self._localstack_sqs_env()}
            if self.image() != LOCALSTACK_IMAGE and os.environ.get("LOCALSTACK_AUTH_TOKEN"):
                # Newer images refuse to start without a token (and their terms restrict shared use).
                env["LOCALSTACK_AUTH_TOKEN"] = os.environ["LOCALSTACK_AUTH_TOKEN"]
            check = ["curl", "-fsS", health]
        else:
            env = {"GATEWAY_PORT": "4566", "PERSIST_STATE": "0", "S3_PERSIST": "0"}
            check = ["python", "-c", f"import urllib.request; urllib.request.urlopen({health!r}, timeout=2)"]
        return ContainerSpec(image=self.image(), env=env, ports={4566: self.backend_port}, publish_host="127.0.0.1",
                             healthcheck=check)

    def container_resources(self) -> Resources:
        if self.flavor == "localstack":
            return Resources(memory="256Mi", memory_limit="1Gi", cpu="100m", cpu_limit="1")
        return Resources(memory="64Mi", memory_limit="256Mi", cpu="50m", cpu_limit="1")

    def ready(self) -> bool:
        # The emulator's own health request, through the gateway its API requests take. Its APIs load on
        # their first request (LocalStack: ~1 s of one core for S3, SQS and EventBridge); the agent's
        # `warm()` makes those requests right after `up`, where they no longer hold `up` up.
        try:
            import urllib.request

            with urllib.request.urlopen(self.endpoint + HEALTH[self.flavor], timeout=2) as resp:
                return resp.status == 200 and "services" in json.loads(resp.read() or b"{}")
        except Exception:  # noqa: BLE001 - refused, reset, not HTTP, not JSON: all mean "not ready"
            return False

    # -- warm clients --------------------------------------------------------------
    def client(self, service: str, key: str = "000000000000", secret: str = "test", region: str = "us-east-1"):
        """One account's lease on the API's shared client (aws_clients.WarmClients): `with svc.client("s3") as s3:`."""
        from botocore.config import Config

        return self._clients.lease(service, endpoint=self.endpoint, key=key, secret=secret, region=region,
                                 config=Config(connect_timeout=3, read_timeout=30,
                                               retries={"max_attempts": 2, "mode": "standard"},
                                               s3={"addressing_style": "path"}))

    def record_bucket(self, ns, bucket: str, owned: bool = True) -> None:
        """Tell the registry (which the gateway reads) that `ns` owns `bucket` now, or no longer."""
        from localdev.gateway import ownership

        if self.ctx.registry is None:
            return
        with self.ctx.registry().connection() as conn:
            (ownership.record_bucket if owned else ownership.forget_bucket)(conn, bucket, ns.name)

    def ns_client(self, ns, service: str):
        return self.client(service, access_key_id(ns), ns.secret("aws", "secret_access_key"), ns.region)

    def close(self) -> None:
        self._clients.close()

    def warm(self) -> None:
        # One read per API a create or delete uses, in the emulator's default account: the shared clients
        # are made, and the emulator has loaded those APIs, before the first namespace needs them.
        with self.client("s3") as s3, self.client("sqs") as sqs, self.client("sns") as sns, \
                self.client("events") as events:
            _listings(s3, sqs, sns)
            events.list_event_buses(Limit=1)

    @classmethod
    def pytest_clients(cls) -> list[PytestClient]:
        return [PytestClient(api, partial(_emulator_client, api),
                             doc=f"A boto3 {api.upper()} client in the namespace's account on the AWS emulator.")
                for api in ("s3", "sqs")]

    def doctor(self) -> list[Check]:
        from localdev.services.aws import install as prov
        from localdev.services.install import ProvisionError

        if self.ctx.runtime != "native":
            return [Check("aws image", True, self.image())]
        checks = []
        try:
            if self.flavor == "localstack":
                venv, python = prov.localstack_venv(self.option("python") or None)
                major, minor = prov.python_version(python) or prov.LOCALSTACK_MIN_PYTHON
                checks.append(Check("aws python", True, f"Python {major}.{minor} at {python}"))
                what, cost = f"LocalStack {prov.LOCALSTACK_VERSION}", "~2.5 min, 500 MB"
            else:
                venv, _ = prov.ministack_venv(self.option("python") or None)
                what, cost = f"MiniStack {prov.MINISTACK_VERSION}", "~20 s, 90 MB"
        except (ProvisionError, BadInput) as exc:
            return [Check("aws python", False, "no usable Python for the emulator", str(exc))]
        built = prov.is_built(venv)
        checks.append(Check(f"aws {self.flavor}", True,
                            f"{what} in {venv}" if built else f"{what} not installed yet: the next `localdev up` "
                            f"installs it ({cost}); `python -m localdev.provision aws` does it now"))
        return checks

    # -- namespaces ------------------------------------------------------------------
    def namespace_env(self, ns) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": aws_clients.public_url(self), **aws_clients.credentials_env(ns, self.tls)}

    def create_namespace(self, ns) -> dict[str, str]:
        """Idempotent: an account needs no creating, only its marker (also how a lost one is restored)."""
        from botocore.exceptions import ClientError

        try:
            with self.ns_client(ns, "events") as events:
                events.create_event_bus(Name=MARKER)
        except ClientError as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":
                raise
        return self.namespace_env(ns)

    def check_namespace(self, ns) -> str | None:
        """None if the namespace's state is intact; else a sentence saying what was lost and what to do."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            with self.ns_client(ns, "events") as events:
                events.describe_event_bus(Name=MARKER)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return _lost_message(ns.name)
            return f"aws: could not check namespace {ns.name}: {exc}"
        except BotoCoreError as exc:
            return f"aws: the emulator on {self.endpoint} does not answer ({exc}): see `localdev status`"
        return None

    def resources(self, ns) -> dict[str, list[str]]:
        """What the namespace's account holds in the emulator (its own listings)."""
        with self.ns_client(ns, "s3") as s3, self.ns_client(ns, "sqs") as sqs, self.ns_client(ns, "sns") as sns:
            return _listings(s3, sqs, sns)

    def _empty_bucket(self, s3, bucket: str) -> None:
        from botocore.exceptions import ClientError

        try:
            for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
                for up in page.get("Uploads", []):
                    s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
        except ClientError:
            pass  # not every emulator implements it; an unfinished upload is not listed as an object anyway
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            batch = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                     for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            for i in range(0, len(batch), 1000):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": batch[i:i + 1000], "Quiet": True})
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):  # what versions did not list
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})

    def drop_namespace(self, ns) -> None:
        """Delete the account's buckets (with their objects), queues, topics and marker; check by listing."""
        from botocore.exceptions import ClientError

        with ExitStack() as stack:
            s3, sqs, sns, events = (stack.enter_context(self.ns_client(ns, s)) for s in ("s3", "sqs", "sns", "events"))
            found = _listings(s3, sqs, sns)
            for bucket in found["buckets"]:
                self._empty_bucket(s3, bucket)
                s3.delete_bucket(Bucket=bucket)
            for url in found["queues"]:
                sqs.delete_queue(QueueUrl=url)
            for arn in found["topics"]:
                sns.delete_topic(TopicArn=arn)
            try:
                events.delete_event_bus(Name=MARKER)
            except ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise
            left = {kind: names for kind, names in _listings(s3, sqs, sns).items() if names}
        if left:
            raise LocalDevError(f"aws: dropping namespace {ns.name!r} left {left} in account "
                                f"{access_key_id(ns)}: run `localdev ns delete {ns.name}` again")

    def snapshot_copier(self):
        from localdev.services.aws.snapshot import AccountCopier

        return AccountCopier(self)

    # -- seeds -------------------------------------------------------------------------
    @classmethod
    def load_fixtures(cls, folder: Path) -> dict:
        """seeds/aws/s3/<bucket>/<key path> (each file an object) and seeds/aws/sqs.json."""
        from localdev.services.aws.seeds import load

        return load(folder)

    def create_seeded(self, ns, fixtures: dict) -> dict[str, str]:
        from localdev.services.aws.seeds import apply_fresh

        apply_fresh(self, ns, fixtures, marker=partial(self.create_namespace, ns))
        return self.namespace_env(ns)

    def seed(self, ns, fixtures: dict) -> Undo:
        """Create buckets `<namespace>-<folder>`, their objects and the queues; on failure undo this call's part."""
        from localdev.services.aws.seeds import apply

        with undoing() as undo:
            apply(self, ns, fixtures, undo)
        return undo



def _listings(s3, sqs, sns) -> dict[str, list[str]]:
    buckets = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    queues = [u for page in sqs.get_paginator("list_queues").paginate() for u in page.get("QueueUrls", [])]
    topics = [t["TopicArn"] for page in sns.get_paginator("list_topics").paginate() for t in page.get("Topics", [])]
    return {"buckets": buckets, "queues": queues, "topics": topics}


def _emulator_client(api: str, env: dict):
    yield aws_clients.boto3_client(env, api, "AWS_ENDPOINT_URL")
