"""localdev.toml / [tool.localdev] in pyproject.toml: found, parsed, validated, overridden by env.

Every error names the file, the key and what is allowed, and is BadInput (exit 2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from localdev.errors import BadInput
from localdev.names import parse_ttl


class Option:
    """One key a service accepts under [services.<name>] in the config. This module's classes are plain, not
    dataclasses: see names.Namespace."""

    __slots__ = ("default", "type", "choices", "help")

    def __init__(self, default: object, type: type | tuple = str, choices: tuple = (), help: str = ""):  # noqa: A002
        self.default, self.type, self.choices, self.help = default, type, choices, help

    def __repr__(self) -> str:
        return f"Option({self.default!r}, {self.type!r}, {self.choices!r}, help={self.help!r})"


RUNTIMES = ("auto", "native", "docker", "external")
COMMON_OPTIONS = {
    "enabled": Option(True, bool, help="start this service with `localdev up`"),
    "allow_plaintext": Option(False, bool, help="let a service that cannot do TLS listen beyond loopback anyway"),
    # runtime = "external": where the service is and localdev's admin login (no password: see below)
    "url": Option("", str, help='runtime = "external": the service\'s endpoint, with the admin user'),
    "password_file": Option("", str, help="a file holding the admin password (else LOCALDEV_<SERVICE>_PASSWORD)"),
}
TOP_KEYS = {"runtime", "host", "advertise_host", "services", "namespaces", "agent"}
NAMESPACE_KEYS = {"default_ttl": "24h", "seeds": "seeds", "region": "us-east-1",
                  # each namespace's PostgreSQL CONNECTION LIMIT unless `ns create --max-connections N` says
                  "max_connections": 20,
                  # seeded creates after the first copy its snapshot (localdev/snapshots.py); false: each replays
                  "seed_snapshots": True}
AGENT_KEYS = {
    "reap_interval": 30, "supervise_interval": 1.0,
    # team mode: a TCP listener beside the Unix socket ("0.0.0.0:7443"), TLS unless insecure
    "listen": "", "cert": "", "key": "", "insecure": False,
}


class Config:
    __slots__ = ("path", "runtime", "host", "advertise_host", "services", "namespaces", "agent")

    def __init__(self, path: Path | None = None, runtime: str = "auto", host: str = "127.0.0.1",
                 advertise_host: str = "", services: dict[str, dict] | None = None, namespaces: dict | None = None,
                 agent: dict | None = None):
        self.path, self.runtime, self.host = path, runtime, host
        self.advertise_host = advertise_host  # the name clients on other machines reach the services by
        self.services = {} if services is None else services
        self.namespaces = {} if namespaces is None else namespaces
        self.agent = {} if agent is None else agent

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Config(path={self.path!r}, runtime={self.runtime!r}, host={self.host!r}, "
                f"services={list(self.services)})")

    @property
    def root(self) -> Path:
        """The project directory: relative paths in the config are relative to it."""
        return self.path.parent if self.path else Path.cwd()

    @property
    def default_ttl(self) -> int | None:
        return parse_ttl(self.namespaces["default_ttl"])

    @property
    def seeds_dir(self) -> Path:
        return (self.root / self.namespaces["seeds"]).resolve()

    def enabled_services(self) -> list[str]:
        return [n for n, opts in self.services.items() if opts["enabled"]]

    def to_json(self) -> dict:
        return {"path": str(self.path) if self.path else None, "runtime": self.runtime, "host": self.host,
                "advertise_host": self.advertise_host, "services": self.services, "namespaces": self.namespaces,
                "agent": self.agent}

    @classmethod
    def from_json(cls, data: dict) -> Config:
        """The config a running cluster recorded at `up`, perhaps by an older localdev: what it did not know
        of takes its default."""
        from localdev.services import service_classes

        classes = service_classes()
        services = {}
        for name, recorded in data["services"].items():
            known = classes.get(name)
            defaults = {key: opt.default for key, opt in (known.options if known else {}).items()}
            services[name] = {**defaults, **recorded}
        return cls(path=Path(data["path"]) if data.get("path") else None, runtime=data["runtime"],
                   host=data["host"], advertise_host=data.get("advertise_host", ""), services=services,
                   namespaces={**NAMESPACE_KEYS, **data["namespaces"]}, agent={**AGENT_KEYS, **data["agent"]})


def find_config_file(start: Path | None = None) -> tuple[Path | None, dict]:
    """LOCALDEV_CONFIG, else the nearest localdev.toml or pyproject.toml with [tool.localdev] upward."""
    explicit = os.environ.get("LOCALDEV_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise BadInput(f"LOCALDEV_CONFIG points at {path}, which is not a file")
        data = _read(path)
        return path, data.get("tool", {}).get("localdev", {}) if path.name == "pyproject.toml" else data
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / "localdev.toml"
        if candidate.is_file():
            return candidate, _read(candidate)
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            table = _read(pyproject).get("tool", {}).get("localdev")
            if table is not None:
                return pyproject, table
    return None, {}


def _read(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")  # (what TOML is, whatever the locale)
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: invalid TOML: not UTF-8 text ({exc.reason})") from None
    parses = _ParseCache()
    data = parses.get(path, text)
    if data is not None:
        return data
    import tomllib  # here: a namespace command without a config file (most CI jobs) never needs it

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: invalid TOML: {exc}") from None
    parses.put(path, text, data)
    return data


class _ParseCache:
    """The last few config files' parses, each kept with the whole text it was parsed from, in the cluster's
    cache dir: every project command (`ns create` in each CI job) reads the config, and importing tomllib and
    parsing was one of the largest parts of a CLI process's start (bench/config_read.py). A parse is reused
    only for the identical text, so an edit is never missed, however quick; a file holding what JSON cannot
    (a date) is parsed each time. Nothing is kept before the cluster's home exists (`up` makes it), and a home
    that cannot be written only costs the parse."""

    KEEP = 8

    def __init__(self):
        from localdev.state import StateDir

        self.file = StateDir().cache / "config-parses.json"

    def _entries(self) -> dict:
        import json

        try:
            entries = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return entries if isinstance(entries, dict) else {}

    def get(self, path: Path, text: str) -> dict | None:
        entry = self._entries().get(str(path))
        if isinstance(entry, dict) and entry.get("text") == text and isinstance(entry.get("data"), dict):
            return entry["data"]
        return None

    def put(self, path: Path, text: str, data: dict) -> None:
        import json

        from localdev.state import write_private

        try:
            if json.loads(json.dumps(data)) != data:  # (a NaN)
                return
        except TypeError:  # a TOML date or time
            return
        entries = {k: v for k, v in self._entries().items() if k != str(path)}
        entries = dict(list(entries.items())[-(self.KEEP - 1):])
        entries[str(path)] = {"text": text, "data": data}
        if not self.file.parent.is_dir():
            return
        try:
            write_private(self.file, json.dumps(entries))
        except OSError:
            pass


def load(start: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    path, raw = find_config_file(start)
    where = str(path) if path else "defaults"
    return validate(raw, where, path, env)


def load_namespace_settings(start: Path | None = None) -> Config:
    """Only [namespaces], what `ns create` and `seed` need: no service package is imported (a CLI process
    would pay for them on every call); `up` validates the whole file."""
    path, raw = find_config_file(start)
    where = str(path) if path else "defaults"
    if not isinstance(raw, dict):
        raise _fail(where, "(top level)", "expected a table")
    return Config(path=path, namespaces=_namespaces(where, raw))


def _namespaces(where: str, raw: dict) -> dict:
    namespaces = _table(where, "namespaces", raw.get("namespaces", {}), NAMESPACE_KEYS)
    try:
        parse_ttl(namespaces["default_ttl"])
    except BadInput as exc:
        raise _fail(where, "namespaces.default_ttl", str(exc)) from None
    if not isinstance(namespaces["max_connections"], int):  # _table lets a float through for a number default
        raise _fail(where, "namespaces.max_connections",
                    f"expected a whole number of at least 1, got {namespaces['max_connections']!r}")
    return namespaces


def _fail(where: str, key: str, problem: str) -> BadInput:
    return BadInput(f"{where}: {key}: {problem}")


def _check(where: str, key: str, value, opt: Option):
    types = opt.type if isinstance(opt.type, tuple) else (opt.type,)
    if opt.type is bool and isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            value = True
        elif value.lower() in ("0", "false", "no", "off"):
            value = False
    if int in types and isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise _fail(where, key, f"expected {' or '.join(t.__name__ for t in types)}, got {value!r}")
    if opt.choices and value not in opt.choices:
        raise _fail(where, key, f"{value!r} is not allowed; use one of: {', '.join(map(str, opt.choices))}")
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:  # ports, sizes, seconds: none < 0
        raise _fail(where, key, f"must be 0 or more, got {value!r}")
    return value


def validate(raw: dict, where: str, path: Path | None, env: Mapping[str, str]) -> Config:
    if not isinstance(raw, dict):
        raise _fail(where, "(top level)", "expected a table")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise _fail(where, sorted(unknown)[0], f"unknown key; allowed: {', '.join(sorted(TOP_KEYS))}")
    cfg = Config(path=path)
    cfg.runtime = _check(where, "runtime", raw.get("runtime", "auto"), Option("auto", str, RUNTIMES))
    if env.get("LOCALDEV_RUNTIME"):
        cfg.runtime = _check("LOCALDEV_RUNTIME", "runtime", env["LOCALDEV_RUNTIME"], Option("auto", str, RUNTIMES))
    cfg.host = _check(where, "host", raw.get("host", "127.0.0.1"), Option("127.0.0.1", str))
    cfg.advertise_host = _check(where, "advertise_host", raw.get("advertise_host", ""), Option("", str))

    services_raw = raw.get("services", {})
    if not isinstance(services_raw, dict):
        raise _fail(where, "services", "expected a table of [services.<name>] tables")
    from localdev.services import service_classes

    classes = service_classes()
    for name in services_raw:
        if name not in classes:
            raise _fail(where, f"services.{name}", f"unknown service; known: {', '.join(classes)}")
    for name, cls in classes.items():
        options = {**COMMON_OPTIONS, "port": Option(cls.default_port, int), **cls.options}
        table = services_raw.get(name, {})
        if not isinstance(table, dict):
            raise _fail(where, f"services.{name}", "expected a table")
        for key in table:
            if key not in options:
                raise _fail(where, f"services.{name}.{key}", f"unknown key; allowed: {', '.join(options)}")
        values = {}
        for key, opt in options.items():
            env_key = f"LOCALDEV_{name.upper()}_{key.upper()}"
            if env.get(env_key) not in (None, ""):
                values[key] = _check(env_key, key, env[env_key], opt)
            else:
                values[key] = _check(where, f"services.{name}.{key}", table.get(key, opt.default), opt)
        if not 1 <= values["port"] <= 65535:
            raise _fail(where, f"services.{name}.port", f"{values['port']} is not a TCP port (1-65535)")
        _check_endpoint(where, name, cls, values, cfg)
        cfg.services[name] = values

    cfg.namespaces = _namespaces(where, raw)
    cfg.agent = _table(where, "agent", raw.get("agent", {}), AGENT_KEYS)
    if cfg.agent["listen"]:
        parse_listen(cfg.agent["listen"], f"{where}: agent.listen")
    if bool(cfg.agent["cert"]) != bool(cfg.agent["key"]):
        raise _fail(where, "agent.cert", "give both cert and key (a certificate and its private key), or neither")
    ports = [(o["port"], n) for n, o in cfg.services.items() if o["enabled"]]
    seen: dict[int, str] = {}
    for port, name in ports:
        if port in seen:
            raise _fail(where, f"services.{name}.port", f"{port} is also the port of {seen[port]}")
        seen[port] = name
    return cfg


def _check_endpoint(where: str, name: str, cls, values: dict, cfg: Config) -> None:
    """runtime = "external": an enabled service needs its url, which must parse and hold no password."""
    from localdev.runtimes.external import parse_url

    if values["url"]:
        parse_url(name, values["url"], cls.url_schemes, cls.default_port, where)
    elif cfg.runtime == "external" and values["enabled"]:
        example = f"{cls.url_schemes[0]}://HOST:{cls.default_port}" if cls.url_schemes else "a url"
        raise _fail(where, f"services.{name}.url", f'runtime = "external" needs each enabled service\'s endpoint '
                    f'(e.g. url = "{example}"), or enabled = false')
    if values["password_file"]:
        values["password_file"] = str((cfg.root / values["password_file"]).resolve())


def _table(where: str, name: str, raw, defaults: dict) -> dict:
    if not isinstance(raw, dict):
        raise _fail(where, name, "expected a table")
    for key in raw:
        if key not in defaults:
            raise _fail(where, f"{name}.{key}", f"unknown key; allowed: {', '.join(defaults)}")
    out: dict = {}
    for key, default in defaults.items():
        value = raw.get(key, default)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise _fail(where, f"{name}.{key}", f"expected true or false, got {value!r}")
            out[key] = value
            continue
        expected = (int, float) if isinstance(default, (int, float)) else type(default)
        if isinstance(value, bool) or not isinstance(value, expected):
            raise _fail(where, f"{name}.{key}", f"expected {type(default).__name__}, got {value!r}")
        if isinstance(default, (int, float)) and value <= 0:
            raise _fail(where, f"{name}.{key}", f"must be positive, got {value!r}")
        out[key] = value
    return out


def parse_listen(text: str, where: str = "--serve") -> tuple[str, int]:
    """'0.0.0.0:7443', '[::]:7443' or ':7443' (every interface) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else ""
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise BadInput(f"{where}: {text!r} is not HOST:PORT (e.g. 0.0.0.0:7443)")
    return host or "0.0.0.0", int(port)
