"""A PostgreSQL someone else runs (runtime = "external"): what `up` checks of localdev's role there.

Managed servers give no superuser. Everything namespaces do works with CREATEROLE + CREATEDB: localdev
creates each namespace's role, grants itself membership in it (which PostgreSQL 15 lets a CREATEROLE role
do for roles it may administer) and acts as that role's member where an owner is needed (CREATE DATABASE
... OWNER, ALTER DATABASE ... OWNER TO, REVOKE on the database, ending its sessions, DROP DATABASE). What
a superuser alone gets, the reserved connections, cannot be had: the budget check below counts them out.
"""

from __future__ import annotations

from localdev.errors import BadInput, LocalDevError

MIN_VERSION = 150000  # CREATE DATABASE ... STRATEGY (spares and templates), pg_read_all_data
AUTH_FAILURES = ("password authentication failed", "no password supplied", "role \"", "does not exist",
                 "pg_hba.conf")


def check_admin(pg) -> None:
    import psycopg

    where = pg.where
    try:
        with pg.connect() as conn:
            row = conn.execute(
                "SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolconnlimit, "
                "current_setting('server_version_num')::int, current_setting('max_connections')::int, "
                "current_setting('superuser_reserved_connections')::int "
                "FROM pg_roles r WHERE r.rolname = current_user").fetchone()
    except psycopg.OperationalError as exc:
        text = str(exc).strip().splitlines()[-1] if str(exc).strip() else exc.__class__.__name__
        if "CONNECT privilege" in text:
            raise BadInput(f"the PostgreSQL role {pg.ctx.endpoint.user!r} at {where} lacks CONNECT on database "
                           f"{pg.admin_db!r}, where localdev's admin connections go: GRANT CONNECT ON DATABASE "
                           f"{pg.admin_db} TO {pg.ctx.endpoint.user}, or name another database in the url") from None
        if any(s in text for s in AUTH_FAILURES):
            raise BadInput(f"postgres at {where}: the server refused localdev's login: {text} (the password comes "
                           "from LOCALDEV_POSTGRES_PASSWORD or [services.postgres] password_file)") from None
        raise LocalDevError(f"postgres at {where} does not answer: {text}") from None
    name, superuser, createrole, createdb, connlimit, version, server_max, reserved = row
    if version < MIN_VERSION:
        raise BadInput(f"postgres at {where} is version {version // 10000}; localdev needs PostgreSQL 15 or later")
    missing = [] if superuser else [p for p, held in (("CREATEROLE", createrole), ("CREATEDB", createdb)) if not held]
    if missing:
        why = {"CREATEROLE": "each namespace is a role it creates",
               "CREATEDB": "each namespace is a database it creates"}
        raise BadInput(f"the PostgreSQL role {name!r} at {where} lacks {' and '.join(missing)} "
                       f"({'; '.join(why[m] for m in missing)}): as a role that may, run "
                       f"ALTER ROLE {name} {' '.join(missing)}; superuser is not needed")
    own = pg.own_connections()
    if connlimit != -1 and connlimit < own:
        raise BadInput(f"the PostgreSQL role {name!r} at {where} has CONNECTION LIMIT {connlimit}, and one localdev "
                       f"agent holds up to {own} connections: ALTER ROLE {name} CONNECTION LIMIT {own} (or more, "
                       "one such share per agent) or -1")
    budget = int(pg.ctx.namespaces.get("max_connections", 20))
    # A role that is not superuser cannot use the reserved slots, so localdev's own connections compete
    # with the namespaces' for the rest; a superuser's own connections have the reserved slots.
    left = server_max - reserved - (0 if superuser else own)
    if left < budget:
        raise BadInput(f"postgres at {where}: max_connections = {server_max} leaves {max(left, 0)} connections for "
                       f"namespaces after {reserved} reserved for superusers"
                       f"{'' if superuser else f' and localdev own {own}'}, fewer than one namespace's budget "
                       f"([namespaces] max_connections = {budget}): lower the budget or raise the server's "
                       "max_connections")
