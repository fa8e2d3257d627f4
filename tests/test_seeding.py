"""Seeds on real services: validated first, applied all-or-nothing, template clone == replay."""

import json
from pathlib import Path

import psycopg
import pytest

from localdev.errors import BadInput
from localdev.seeding import load_fixtures
from localdev.services.postgres.sqlscript import statements
from localdev.waiting import TimedOut, poll_until

REPO_SEEDS = Path(__file__).parent.parent / "seeds"


def dump(url: str) -> dict:
    """Every table's rows and owner, for comparing two namespaces."""
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "select tablename from pg_tables where schemaname='public' order by 1")]
        owners = {r[0]: r[1] for r in conn.execute("select tablename, tableowner from pg_tables where schemaname='public'")}
        data = {t: conn.execute(f'select * from "{t}" order by 1').fetchall() for t in tables}
    return {"tables": data, "owners": owners}


def pg_seeds(tmp_path, files: dict[str, str]) -> Path:
    root = tmp_path / "seeds"
    (root / "postgres").mkdir(parents=True)
    for name, text in files.items():
        (root / "postgres" / name).write_text(text)
    return root


def test_example_seeds_land_and_template_equals_replay(shared_cluster):
    h = shared_cluster
    h.cli("ns", "create", "seed-tpl", "--seeds", str(REPO_SEEDS), check=True)
    h.cli("ns", "create", "seed-replay", "--no-seed", check=True)
    h.cli("seed", "seed-replay", "--seeds", str(REPO_SEEDS), check=True)
    a, b = h.ns_env("seed-tpl"), h.ns_env("seed-replay")
    da, db = dump(a["DATABASE_URL"]), dump(b["DATABASE_URL"])
    assert da["tables"] == db["tables"] and len(da["tables"]["customers"]) == 3
    assert set(da["owners"].values()) == {"ns_seed_tpl"} and set(db["owners"].values()) == {"ns_seed_replay"}
    with psycopg.connect(a["DATABASE_URL"]) as conn:  # the role owns its seeded tables: it can alter them
        conn.execute("alter table customers add column nickname text")
        assert conn.execute("select total_cents from order_totals where order_id = 1").fetchone() == (19900 + 2 * 899,)
    # the template is not reachable by namespace roles
    tpl = [n for n in json.loads(h.cli("ns", "list", "--json").stdout) if n["name"] == "seed-tpl"][0]["seed_hash"]
    assert tpl
    with psycopg.connect(h.cluster.services["postgres"].admin_url(), autocommit=True) as conn:
        row = conn.execute("select datname, datallowconn from pg_database where datname like 'localdev_tpl_%'").fetchall()
    assert row and all(not allow for _, allow in row)
    for n in ("seed-tpl", "seed-replay"):
        h.cli("ns", "delete", n, check=True)


@pytest.mark.parametrize("files,where", [
    ({"001.sql": "create table t (x text);\ninsert into t values ('unclosed);\n"}, "001.sql:2: a string"),
    ({"001.sql": "create table t (x int);\n", "002.sql": "\n\ninsert into t values ($$x);\n"}, "002.sql:3: a $$ body"),
    ({"001.sql": "create table t (x int);\n/* never closed\n"}, "001.sql:2: a /* comment */"),
    ({"001.sql": "copy t from stdin;\n1\n2\n"}, "001.sql:3: COPY data is not ended"),
    ({"notes.txt": "hello"}, "notes.txt: postgres seeds are *.sql files"),
])
def test_malformed_sql_is_rejected_before_anything(tmp_path, files, where):
    with pytest.raises(BadInput) as err:
        load_fixtures(pg_seeds(tmp_path, files))
    assert where in str(err.value)


def test_non_utf8_and_unknown_folder(tmp_path):
    root = pg_seeds(tmp_path, {})
    (root / "postgres" / "001.sql").write_bytes(b"select '\xff';\n")
    with pytest.raises(BadInput, match="001.sql: not UTF-8"):
        load_fixtures(root)
    (root / "postgres" / "001.sql").write_text("select 1;\n")
    (root / "memcached").mkdir()
    with pytest.raises(BadInput, match="memcached: unexpected entry"):
        load_fixtures(root)


def test_server_side_error_leaves_nothing(shared_cluster, tmp_path):
    """File 1 applies, file 2 fails on the server: create exits 2 naming file:line and leaves no namespace;
    re-seeding an existing namespace with it changes nothing."""
    h = shared_cluster
    seeds = pg_seeds(tmp_path, {"001.sql": "create table good (x int);\ninsert into good values (1);\n",
                                "002.sql": "insert into good values (2);\n\ninsert into missing_table values (3);\n"})
    proc = h.cli("ns", "create", "half", "--seeds", str(seeds))
    assert proc.returncode == 2, proc.stderr
    assert "002.sql:3: relation \"missing_table\" does not exist" in proc.stderr
    assert "half" not in h.cli("ns", "list", "--json").stdout
    with psycopg.connect(h.cluster.services["postgres"].admin_url(), autocommit=True) as conn:
        assert not conn.execute("select 1 from pg_database where datname='ns_half'").fetchone()
        assert not conn.execute("select 1 from pg_roles where rolname='ns_half'").fetchone()
    h.cli("ns", "create", "reseed", "--no-seed", check=True)
    proc = h.cli("seed", "reseed", "--seeds", str(seeds))
    assert proc.returncode == 2 and "002.sql:3" in proc.stderr
    with psycopg.connect(h.ns_env("reseed")["DATABASE_URL"]) as conn:
        assert conn.execute("select count(*) from pg_tables where schemaname='public'").fetchone() == (0,)
    h.cli("ns", "delete", "reseed", check=True)


def test_large_sql_file_streams(shared_cluster, tmp_path):
    h = shared_cluster
    root = tmp_path / "seeds"
    (root / "postgres").mkdir(parents=True)
    with open(root / "postgres" / "001_big.sql", "w") as fh:
        fh.write("create table big (id int primary key, label text);\n")
        for i in range(0, 100_000, 1000):
            fh.write("insert into big values " + ",".join(f"({j}, 'row {j}; ''quoted''')" for j in range(i, i + 1000)) + ";\n")
        fh.write("copy big (id, label) from stdin;\n")
        fh.writelines(f"{j}\tcopied {j}\n" for j in range(100_000, 150_000))
        fh.write("\\.\n")
    h.cli("ns", "create", "bigseed", "--seeds", str(root), check=True)
    with psycopg.connect(h.ns_env("bigseed")["DATABASE_URL"]) as conn:
        assert conn.execute("select count(*), max(id) from big").fetchone() == (150_000, 149_999)
        assert conn.execute("select label from big where id = 7").fetchone() == ("row 7; 'quoted'",)
    h.cli("ns", "delete", "bigseed", check=True)


def test_statement_splitter_lines():
    sql = "-- c\nselect 1;\n\nselect 'a;b'\n  , $x$ ; $x$;\ncopy t from stdin;\nr1\n\\.\nselect 3"
    got = [(s.line, s.sql.split()[0], list(s.copy_rows or [])) for s in statements(sql.splitlines(True))]
    assert got == [(2, "select", []), (4, "select", []), (6, "copy", ["r1\n"]), (9, "select", [])]


def test_progress_streams_from_the_agent(shared_cluster, tmp_path):
    from localdev.agent_client import AgentClient

    root = tmp_path / "seeds"
    (root / "postgres").mkdir(parents=True)
    with open(root / "postgres" / "001.sql", "w") as fh:
        fh.write("create table if not exists p (id int);\n")
        fh.writelines(f"insert into p values ({i});\n" for i in range(3000))
    seen = []
    client = AgentClient(shared_cluster.home)
    info = client.create("progress", seed=True, seeds_dir=root, on_progress=lambda s, m, f: seen.append((m, f)))
    assert info["state"] == "ready" and info["seed_hash"]
    fractions = [f for _, f in seen]
    assert len(seen) >= 3 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(m.startswith("postgres: ") for m, _ in seen)
    (root / "postgres" / "002.sql").write_text("insert into nowhere values (1);\n")
    with pytest.raises(BadInput, match="002.sql:1"):
        client.seed("progress", root, on_progress=lambda s, m, f: None)
    shared_cluster.cli("ns", "delete", "progress", check=True)


def test_cli_on_a_terminal_shows_progress_and_succeeds(shared_cluster, tmp_path):
    import subprocess
    import sys

    cmd = f"{sys.executable} -m localdev.cli ns create tty-made --seeds {REPO_SEEDS}"
    proc = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=shared_cluster.env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert "namespace tty-made is ready" in proc.stdout and "localdev ns delete tty-made" in proc.stdout  # next steps
    shared_cluster.cli("ns", "delete", "tty-made", check=True)


def _spares(admin_url: str) -> list[tuple[str, bool, str]]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return conn.execute("select datname, datallowconn, coalesce(datacl::text, '') from pg_database "
                            "where datname like 'localdev\\_spare\\_%' order by oid").fetchall()


def test_spare_databases_are_closed_to_tenants_and_claimed_whole(shared_cluster):
    """Creates rename a spare clone made ahead; until then nobody but the admin can enter one."""
    from localdev.services.postgres.spares import KEEP, key_of

    h = shared_cluster
    mine = f"localdev_spare_{key_of(load_fixtures(REPO_SEEDS, ['postgres']).per_service['postgres'].template)}_"
    admin = h.cluster.services["postgres"].admin_url()
    h.cli("ns", "create", "spare-a", "--seeds", str(REPO_SEEDS), check=True)
    h.cli("ns", "create", "spare-blank", "--no-seed", check=True)

    def refilled() -> tuple[list, list] | None:
        spares = _spares(admin)
        seeded = [s for s in spares if s[0].startswith(mine)]
        blank = [s for s in spares if s[0].startswith("localdev_spare_blank_")]
        return (spares, seeded) if len(seeded) >= KEEP and len(blank) >= KEEP else None

    try:  # the agent refills in the background
        spares, seeded = poll_until(refilled, 60, "the agent to refill the spares")
    except TimedOut as e:
        pytest.fail(f"{e}: {_spares(admin)}")
    assert all(not allow and "{=" not in acl and ",=" not in acl for _, allow, acl in spares), spares

    a = h.ns_env("spare-a")
    for name, _, _ in spares:  # a tenant cannot enter a spare, which would then become another's database
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host=a["PGHOST"], port=a["PGPORT"], user=a["PGUSER"], password=a["PGPASSWORD"],
                            dbname=name, connect_timeout=5).close()

    h.cli("ns", "create", "spare-b", "--seeds", str(REPO_SEEDS), check=True)
    assert seeded[0][0] not in [s[0] for s in _spares(admin)]  # the oldest seeded spare became spare-b
    b = h.ns_env("spare-b")
    da, db = dump(a["DATABASE_URL"]), dump(b["DATABASE_URL"])
    assert da["tables"] == db["tables"] and set(db["owners"].values()) == {"ns_spare_b"}
    with psycopg.connect(admin, autocommit=True) as conn:
        owner, acl = conn.execute("select pg_get_userbyid(datdba), datacl::text from pg_database "
                                  "where datname = 'ns_spare_b'").fetchone()
    assert owner == "ns_spare_b" and "{=" not in acl and ",=" not in acl
    for n in ("spare-a", "spare-blank", "spare-b"):
        h.cli("ns", "delete", n, check=True)


def test_a_half_made_spare_and_an_older_localdevs_spare_are_dropped_not_claimed(make_cluster):
    """A spare is built under a `localdev_filling_` name and renamed once whole; a filler that died leaves its
    half-made database and role, which the next filler drops. A spare without its role (an older localdev's,
    whose tables the seed role owns) is dropped too: claiming it would give the namespace tables it cannot
    alter."""
    from psycopg import sql

    from localdev.services.postgres.spares import KEEP, key_of

    h = make_cluster(("postgres",))
    key = key_of(load_fixtures(REPO_SEEDS, ["postgres"]).per_service["postgres"].template)
    h.cli("ns", "create", "first", "--seeds", str(REPO_SEEDS), check=True)
    admin = h.cluster.services["postgres"].admin_url()
    poll_until(lambda: len([s for s in _spares(admin) if key in s[0]]) >= KEEP, 60, "the first refill")
    half, old = f"localdev_filling_{key}_0badc0de", f"localdev_spare_{key}_00000001"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(half)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} ALLOW_CONNECTIONS false").format(
            sql.Identifier(half), sql.Identifier(half)))
        conn.execute(sql.SQL("CREATE DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(old)))

    h.cli("ns", "create", "second", "--seeds", str(REPO_SEEDS), check=True)  # claims one, and refills

    def cleaned() -> bool:
        with psycopg.connect(admin, autocommit=True) as conn:
            dbs = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")}
        return half not in dbs and half not in roles and old not in dbs and \
            len([s for s in _spares(admin) if key in s[0]]) >= KEEP
    poll_until(cleaned, 60, "the refill to drop the half-made and the role-less spare")
    owners = dump(h.ns_env("second")["DATABASE_URL"])["owners"]
    assert set(owners.values()) == {"ns_second"}
    with psycopg.connect(admin, autocommit=True) as conn:  # every spare has the role that owns it and its tables
        rows = conn.execute("SELECT d.datname, pg_get_userbyid(d.datdba) FROM pg_database d "
                            "WHERE d.datname LIKE 'localdev\\_spare\\_%'").fetchall()
    assert rows and all(name == owner for name, owner in rows), rows
