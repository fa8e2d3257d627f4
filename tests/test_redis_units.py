"""Redis seed validation and the service's specs: pure logic, no server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localdev.errors import BadInput
from localdev.services.base import ServiceContext
from localdev.services.redis import NAMESPACE_RULES, Redis
from localdev.services.redis.seeds import load
from localdev.state import StateDir


def write(folder: Path, name: str, body) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


@pytest.mark.parametrize("body,message", [
    ('[{"key": "a", "type": "string",', ":1: "),
    ('{"key": "a"}', ":1: expected a JSON array of keys"),
    ('[\n"a"]', ':2: expected a JSON array of keys'),
    ('[{"key": "a", "type": "string", "value": "v", "expire": 3}]', "unknown field 'expire'"),
    ('[{"type": "string", "value": "v"}]', 'missing "key"'),
    ('[{"key": "a", "value": "v"}]', 'missing "type"'),
    ('[{"key": "a", "type": "string"}]', 'missing "value"'),
    ('[{"key": "", "type": "string", "value": "v"}]', '"key" must be a non-empty string'),
    ('[{"key": 1, "type": "string", "value": "v"}]', '"key" must be a non-empty string'),
    ('[{"key": "a", "type": "stream", "value": "v"}]', "\"type\" must be one of string, hash, list, set, zset, not 'stream'"),
    ('[{"key": "a", "type": "string", "value": 42}]', "a string's \"value\" must be a JSON string, not 42"),
    ('[{"key": "a", "type": "hash", "value": {}}]', "a hash's \"value\" must be a non-empty object"),
    ('[{"key": "a", "type": "hash", "value": {"f": 1}}]', "hash field 'f' must be a string, not 1"),
    ('[{"key": "a", "type": "list", "value": []}]', "a list's \"value\" must be a non-empty array of strings"),
    ('[{"key": "a", "type": "list", "value": ["x", null]}]', "every element must be a string, not None"),
    ('[{"key": "a", "type": "set", "value": ["x", "y", "x"]}]', "set member 'x' appears twice"),
    ('[{"key": "a", "type": "zset", "value": ["x"]}]', "a zset's \"value\" must be a non-empty object of member: score"),
    ('[{"key": "a", "type": "zset", "value": {"x": "1"}}]', "zset member 'x' needs a finite number as its score, not '1'"),
    ('[{"key": "a", "type": "zset", "value": {"x": true}}]', "zset member 'x' needs a finite number"),
    ('[{"key": "a", "type": "zset", "value": {"x": NaN}}]', "zset member 'x' needs a finite number"),
    ('[{"key": "a", "type": "string", "value": "v", "ttl": 0}]', "\"ttl\" must be a positive whole number of seconds, not 0"),
    ('[{"key": "a", "type": "string", "value": "v", "ttl": 1.5}]', "\"ttl\" must be a positive whole number"),
    ('[{"key": "a", "type": "string", "value": "v", "ttl": true}]', "\"ttl\" must be a positive whole number"),
    ('[{"key": "a", "type": "string", "value": "v"},\n {"key": "a", "type": "string", "value": "w"}]',
     ":2: key 'a' is seeded already at "),
])
def test_bad_fixtures_are_refused_with_file_and_line(tmp_path, body, message):
    path = write(tmp_path / "redis", "cache.json", body)
    with pytest.raises(BadInput, match=None) as info:
        load(tmp_path / "redis")
    assert str(info.value).startswith(f"{path}:")
    assert message in str(info.value)


def test_the_line_is_the_entry_s_own(tmp_path):
    path = write(tmp_path / "redis", "c.json", '[\n  {"key": "a", "type": "string", "value": "v"},\n\n'
                                               '  {"key": "b", "type": "list", "value": "v"}\n]')
    with pytest.raises(BadInput, match=rf"^{path}:4: key 'b': a list's"):
        load(tmp_path / "redis")


def test_a_key_twice_across_files_names_both(tmp_path):
    first = write(tmp_path / "redis", "a.json", [{"key": "k", "type": "string", "value": "1"}])
    second = write(tmp_path / "redis", "b.json", [{"key": "k", "type": "string", "value": "2"}])
    with pytest.raises(BadInput, match=rf"^{second}:1: key 'k' is seeded already at {first}:1$"):
        load(tmp_path / "redis")


def test_other_files_are_refused(tmp_path):
    write(tmp_path / "redis", "notes.txt", "hi")
    with pytest.raises(BadInput, match="redis seeds are .json files"):
        load(tmp_path / "redis")


def test_good_fixtures_parse_to_typed_keys(tmp_path):
    write(tmp_path / "redis", "a.json", [
        {"key": "s", "type": "string", "value": "v", "ttl": 5},
        {"key": "z", "type": "zset", "value": {"m": 2}},
    ])
    write(tmp_path / "redis", ".hidden.json", "not json")  # ignored, like the other services' seeds
    seeds = load(tmp_path / "redis")
    keys = list(seeds.keys())
    assert seeds.count == 2
    assert [(k.key, k.type, k.value, k.ttl) for k in keys] == [("s", "string", "v", 5), ("z", "zset", {"m": 2.0}, None)]


def test_the_example_seeds_validate():
    keys = load(Path(__file__).parent.parent / "seeds" / "redis").keys()
    assert {k.type for k in keys} == {"string", "hash", "list", "set", "zset"}


def service(tmp_path, **options) -> Redis:
    opts = {"enabled": True, "port": 16379, "bin": "", "image": "redis:7.0.15-bookworm", "databases": 1024, **options}
    return Redis(ServiceContext(state=StateDir(tmp_path), host="127.0.0.1", runtime="docker", options=opts))


def test_container_spec_pins_the_image_and_keeps_the_password_off_the_command_line(tmp_path):
    svc = service(tmp_path)
    spec = svc.container_spec()
    assert spec.image == "redis:7.0.15-bookworm"
    assert spec.ports == {6379: 16379} and spec.volumes == {"redis-data": "/data"}
    assert spec.env == {"REDISCLI_AUTH": svc.admin_password}
    assert not [a for a in spec.command + spec.healthcheck if svc.admin_password in a]
    args = spec.command[4:]
    pairs = dict(zip(args[::2], args[1::2]))
    assert pairs["--appendonly"] == "yes" and pairs["--appendfsync"] == "everysec" and pairs["--save"] == ""
    assert pairs["--aclfile"] == "/data/users.acl" and pairs["--protected-mode"] == "yes"
    assert pairs["--databases"] == "1024" and pairs["--port"] == "6379"


def test_namespace_rules_pin_select_and_keep_to_the_prefix(tmp_path):
    from localdev.names import Namespace

    ns = Namespace("pr-17", secrets={"redis": {"password": "p" * 48}})
    rules = service(tmp_path)._rules(ns, 42)
    assert rules[:5] == ["reset", "on", ">" + "p" * 48, "~pr-17:*", "&pr-17:*"]
    assert rules[-2:] == ["-select", "+select|42"]
    assert "-client|tracking" in NAMESPACE_RULES and "-copy" in NAMESPACE_RULES and "-move" in NAMESPACE_RULES
    assert Redis.user(ns) == "ns_pr_17" and Redis.key_prefix(ns) == "pr-17:"


def test_too_few_databases_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match=r"\[services.redis\] databases must be at least 2"):
        service(tmp_path, databases=1).check()
