"""The config's parse cache (localdev/config.py `_ParseCache`): a parse is reused only for the identical text."""

import json
import os
import subprocess
import sys

import pytest

from localdev.config import find_config_file, load_namespace_settings
from localdev.errors import BadInput


@pytest.fixture
def project(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "cache").mkdir(parents=True)
    config = tmp_path / "localdev.toml"
    monkeypatch.setenv("LOCALDEV_HOME", str(home))
    monkeypatch.setenv("LOCALDEV_CONFIG", str(config))
    return home, config


def _fresh_process(env_home, config) -> tuple[str, bool]:
    """A new process's `[namespaces] default_ttl`, and whether it imported tomllib to get it."""
    code = ("import sys; from localdev.config import load_namespace_settings as load; "
            "print(load().namespaces['default_ttl'], 'tomllib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "LOCALDEV_HOME": str(env_home), "LOCALDEV_CONFIG": str(config)}).stdout
    ttl, imported = out.split()
    return ttl, imported == "True"


def test_a_second_process_reuses_the_parse_and_an_edit_is_seen_however_quick(project):
    home, config = project
    config.write_text('[namespaces]\ndefault_ttl = "2h"\n')
    assert _fresh_process(home, config) == ("2h", True)
    cache = home / "cache" / "config-parses.json"
    assert cache.stat().st_mode & 0o777 == 0o600
    assert _fresh_process(home, config) == ("2h", False)
    # The same size and the same mtime: only the text tells the edit apart.
    stat = config.stat()
    config.write_text('[namespaces]\ndefault_ttl = "3h"\n')
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert _fresh_process(home, config) == ("3h", True)
    assert _fresh_process(home, config) == ("3h", False)


def test_what_json_cannot_hold_is_parsed_every_time_and_read_right(project):
    home, config = project
    config.write_text('[namespaces]\ndefault_ttl = "45m"\n[tool]\nwhen = 2026-12-02T10:00:00Z\n')
    path, raw = find_config_file()
    assert path == config and raw["tool"]["when"].year == 2026
    assert not (home / "cache" / "config-parses.json").exists()
    assert load_namespace_settings().namespaces["default_ttl"] == "45m"


def test_a_cluster_home_not_made_yet_gets_no_cache(tmp_path, monkeypatch):
    config = tmp_path / "localdev.toml"
    config.write_text('[namespaces]\ndefault_ttl = "1h"\n')
    monkeypatch.setenv("LOCALDEV_HOME", str(tmp_path / "never-up"))
    monkeypatch.setenv("LOCALDEV_CONFIG", str(config))
    assert load_namespace_settings().namespaces["default_ttl"] == "1h"
    assert not (tmp_path / "never-up").exists()


def test_a_cache_that_cannot_be_written_or_read_costs_only_the_parse(project):
    home, config = project
    config.write_text('[namespaces]\ndefault_ttl = "1h"\n')
    (home / "cache" / "config-parses.json").mkdir()  # neither a readable file nor replaceable by one
    assert load_namespace_settings().namespaces["default_ttl"] == "1h"
    (home / "cache" / "config-parses.json").rmdir()
    (home / "cache" / "config-parses.json").write_text("{not json")
    assert load_namespace_settings().namespaces["default_ttl"] == "1h"
    assert json.loads((home / "cache" / "config-parses.json").read_text())[str(config)]["text"] == config.read_text()


def test_a_cached_file_turned_invalid_is_refused(project):
    home, config = project
    config.write_text('[namespaces]\ndefault_ttl = "1h"\n')
    load_namespace_settings()
    config.write_text('[namespaces\n')
    with pytest.raises(BadInput, match="invalid TOML"):
        load_namespace_settings()
    config.write_bytes(b'[namespaces]\ndefault_ttl = "\xff"\n')
    with pytest.raises(BadInput, match="not UTF-8"):
        load_namespace_settings()


def test_only_the_last_few_files_are_kept(project, tmp_path, monkeypatch):
    home, _ = project
    for i in range(12):
        config = tmp_path / f"p{i}.toml"
        config.write_text(f'[namespaces]\ndefault_ttl = "{i + 1}h"\n')
        monkeypatch.setenv("LOCALDEV_CONFIG", str(config))
        assert load_namespace_settings().namespaces["default_ttl"] == f"{i + 1}h"
    kept = json.loads((home / "cache" / "config-parses.json").read_text())
    assert list(kept) == [str(tmp_path / f"p{i}.toml") for i in range(4, 12)]
