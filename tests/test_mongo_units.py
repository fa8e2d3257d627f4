"""FerretDB/mongosh acquisition and the mongo service's specs: fast checks, real binaries where they exist."""

import stat
import subprocess

import pytest

from localdev.errors import BadInput
from localdev.services.install import ProvisionError
from localdev.services.mongo import install as prov
from localdev.services.base import ServiceContext
from localdev.services.mongo import ANON_ROLE, FERRETDB_IMAGE, MONGO_IMAGE, Mongo
from localdev.state import StateDir


def fake_binary(path, size=2_000_000):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_explicit_path_wins_and_is_checked(tmp_path, monkeypatch):
    monkeypatch.delenv("LOCALDEV_FERRETDB_BIN", raising=False)
    binary = fake_binary(tmp_path / "bin" / "ferretdb")
    assert prov.ferretdb_binary(str(binary)) == binary
    monkeypatch.setenv("LOCALDEV_FERRETDB_BIN", str(binary))
    assert prov.ferretdb_binary() == binary
    (tmp_path / "plain").write_text("not executable")
    with pytest.raises(ProvisionError, match="not an executable file"):
        prov.ferretdb_binary(str(tmp_path / "plain"))


def test_cache_is_used_before_any_download_or_build(tmp_path, monkeypatch):
    monkeypatch.delenv("LOCALDEV_FERRETDB_BIN", raising=False)
    monkeypatch.setenv("LOCALDEV_CACHE", str(tmp_path / "cache"))
    cached = fake_binary(tmp_path / "cache" / "ferretdb" / prov.VERSION / "ferretdb")

    def boom(*_a, **_k):
        raise AssertionError("must not download or build when the cache has it")

    monkeypatch.setattr(prov, "_from_release", boom)
    monkeypatch.setattr(prov, "_from_module_proxy", boom)
    assert prov.ferretdb_binary() == cached


def test_without_download_and_without_go_the_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("LOCALDEV_FERRETDB_BIN", raising=False)
    monkeypatch.setenv("LOCALDEV_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(prov, "RELEASE_URL", "http://127.0.0.1:9/{version}/ferretdb-linux-{arch}")  # refused at once
    monkeypatch.setattr(prov, "which", lambda name: None)
    with pytest.raises(ProvisionError) as err:
        prov.ferretdb_binary()
    text = str(err.value)
    assert "could not download" in text and "Go is not installed" in text
    assert "LOCALDEV_FERRETDB_BIN" in text
    assert not (tmp_path / "cache" / "ferretdb" / prov.VERSION / "ferretdb").exists()


def test_the_real_binary_is_v1_24_2():
    """The shared cache's binary (built from the Go module proxy on this machine if it was not there)."""
    binary = prov.ferretdb_binary()
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30).stdout
    assert "version: v1.24.2" in out


def test_mongosh_is_installed_and_runs():
    out = subprocess.run([str(prov.mongosh_binary()), "--version"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == prov.MONGOSH_VERSION


def service(tmp_path, runtime="native", **options):
    opts = {"port": 27999, "enabled": True, "flavor": "ferretdb", "backend": "postgresql", "bin": "",
            "image": "", "pool_max_conns": 4, **options}
    ctx = ServiceContext(state=StateDir(tmp_path), host="127.0.0.1", runtime=runtime, options=opts)

    class FakePostgres:  # only its address is read by the specs
        host, port = "127.0.0.1", 25432

    ctx.services["postgres"] = FakePostgres()
    return Mongo(ctx)


def test_native_spec_keeps_everything_on_loopback_and_no_credentials_in_the_url(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCALDEV_FERRETDB_BIN", str(fake_binary(tmp_path / "ferretdb")))
    spec = service(tmp_path).native_spec()
    args = dict(a[2:].split("=", 1) for a in spec.argv[1:])
    assert args["listen-addr"] == "127.0.0.1:27999"
    assert args["debug-addr"] == "127.0.0.1:0"
    assert args["telemetry"] == "disable"
    assert args["handler"] == "postgresql"
    url = args["postgresql-url"]
    assert url.startswith(f"postgres://{ANON_ROLE}@127.0.0.1:25432/ferretdb?") and ":" not in url.split("@")[0][11:]
    assert "pool_max_conns=4" in url
    assert spec.ports == [27999]
    lite = dict(a[2:].split("=", 1) for a in service(tmp_path, backend="sqlite").native_spec().argv[1:])
    assert lite["handler"] == "sqlite" and lite["sqlite-url"].startswith("file:/")


def test_mongodb_flavor_is_containers_only(tmp_path):
    with pytest.raises(BadInput, match="runs only in containers"):
        service(tmp_path, flavor="mongodb").check()
    service(tmp_path, runtime="docker", flavor="mongodb").check()
    spec = service(tmp_path, runtime="docker", flavor="mongodb").container_spec()
    assert spec.image == MONGO_IMAGE and spec.env["MONGO_INITDB_ROOT_PASSWORD"]
    assert spec.ports == {27017: 27999}


def test_container_spec_pins_ferretdb_v1(tmp_path):
    spec = service(tmp_path, runtime="docker").container_spec()
    assert spec.image == FERRETDB_IMAGE and spec.image.endswith(":1.24.2")
    assert spec.env["FERRETDB_POSTGRESQL_URL"].startswith(f"postgres://{ANON_ROLE}@postgres:5432/ferretdb?")
    assert spec.env["FERRETDB_TELEMETRY"] == "disable"


def test_uris_per_flavor(tmp_path):
    from localdev.names import Namespace

    ns = Namespace("pr-7", secrets={"postgres": {"password": "s3cret"}, "mongo": {"password": "s3cret"}})
    assert service(tmp_path).namespace_env(ns)["MONGODB_URI"] == \
        "mongodb://ns_pr_7:s3cret@127.0.0.1:27999/ns_pr_7?authMechanism=PLAIN"
    assert service(tmp_path, backend="sqlite").namespace_env(ns)["MONGODB_URI"] == "mongodb://127.0.0.1:27999/ns_pr_7"
    assert service(tmp_path, runtime="docker", flavor="mongodb").namespace_env(ns)["MONGODB_URI"] == \
        "mongodb://ns_pr_7:s3cret@127.0.0.1:27999/ns_pr_7?authSource=ns_pr_7"


def test_fixture_errors_name_file_and_line(tmp_path):
    folder = tmp_path / "mongo"
    folder.mkdir()
    (folder / "users.json").write_text('[{"a": 1}, {"at": {"$date": "2024-01-02T00:00:00Z"}}]')
    users = Mongo.load_fixtures(folder)["users"]  # checked and counted; the documents are read again to seed
    assert (users.count, users.indexes) == (2, [])
    assert [d for d in users.read()][1]["at"].year == 2024
    (folder / "orders.indexes.json").write_text('[{"unique": true}]')
    with pytest.raises(BadInput, match=r"orders.indexes.json:1: every index needs"):
        Mongo.load_fixtures(folder)
    (folder / "orders.indexes.json").unlink()
    (folder / "bad.json").write_text('[\n{"a": 1},\n{"b": }\n]')
    with pytest.raises(BadInput, match=r"bad.json:3: "):
        Mongo.load_fixtures(folder)
    (folder / "bad.json").write_text('{"not": "a list"}')
    with pytest.raises(BadInput, match="expected a JSON array"):
        Mongo.load_fixtures(folder)
    (folder / "bad.json").write_text('[{"a": 1},\n 7]')
    with pytest.raises(BadInput, match=r"bad.json:2: expected a JSON array of objects"):
        Mongo.load_fixtures(folder)
    # a bad Extended JSON wrapper: each kind of error bson raises, with the document's line
    for wrapper in ('{"$oid": "zz"}', '{"$date": "nope"}', '{"$binary": 5}'):
        (folder / "bad.json").write_text('[{"a": 1},\n{"b": 2},\n{"x": %s}]' % wrapper)
        with pytest.raises(BadInput, match=r"bad.json:3: "):
            Mongo.load_fixtures(folder)
