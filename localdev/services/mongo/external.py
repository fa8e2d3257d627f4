"""A MongoDB someone else runs (runtime = "external"): what `up` checks of localdev's user there.

Each namespace is a database and a user with readWrite on it alone, so localdev's user must create and
drop users (createUser with grantRole, dropUser) and drop databases. Those privileges are proved the only
way every server answers the same: a throwaway user is created in a probe database and removed again.
"""

from __future__ import annotations

from secrets import token_hex

from localdev.errors import BadInput, LocalDevError

PROBE_DB = "localdev_probe"
UNAUTHORIZED = 13
AUTH_FAILED = 18


def check_admin(mongo) -> None:
    from pymongo.errors import OperationFailure, PyMongoError

    where = mongo.where
    client = mongo.admin()
    try:
        client.admin.command("ping")  # with the login: a wrong password fails here
    except OperationFailure as exc:
        if exc.code == AUTH_FAILED:
            reason = (exc.details or {}).get("errmsg", exc)
            raise BadInput(f"mongo at {where}: the server refused localdev's login ({reason}; the password comes "
                           "from LOCALDEV_MONGO_PASSWORD or [services.mongo] password_file)") from None
        if exc.code != UNAUTHORIZED:  # logged in but refused even this: the steps below say what is missing
            raise LocalDevError(f"mongo at {where}: {exc}") from None
    except PyMongoError as exc:
        raise LocalDevError(f"mongo at {where} does not answer: {exc}") from None
    user, db = f"localdev_probe_{token_hex(4)}", client[PROBE_DB]
    steps = (
        ("createUser (with grantRole of readWrite on the namespace's database)",
         lambda: db.command("createUser", user, pwd=token_hex(16), roles=[{"role": "readWrite", "db": PROBE_DB}])),
        ("dropUser", lambda: db.command("dropAllUsersFromDatabase")),
        ("dropDatabase", lambda: client.drop_database(PROBE_DB)),
    )
    for privilege, step in steps:
        try:
            step()
        except OperationFailure as exc:
            if exc.code != UNAUTHORIZED:
                raise LocalDevError(f"mongo at {where}: checking {privilege.split()[0]} failed: {exc}") from None
            raise BadInput(f"the mongo user {mongo.ctx.endpoint.user!r} at {where} lacks {privilege} on any "
                           "database (each namespace is a database with a user of its own): grant it a role "
                           "that has it, e.g. userAdminAnyDatabase and dbAdminAnyDatabase") from None
