"""localdev: one shared local cluster, many cheap isolated namespaces.

    import localdev
    client = localdev.connect()                           # the cluster this user is pointed at
    client = localdev.connect("https://ci-db:7443", token="ldt_...", ca="ca.pem")   # a shared one
    client.create("pr-1", ttl="2h", with_env=True)["env"]["DATABASE_URL"]
"""


def connect(url: str | None = None, token: str | None = None, ca: str | None = None, timeout: float = 600):
    """A client of a cluster's agent: `url` (+ `token`, `ca`) for a shared one; else LOCALDEV_URL or the
    profile `localdev login` wrote; else the local cluster in LOCALDEV_HOME."""
    if url:
        from localdev.agent_client import AgentClient

        return AgentClient(url=url, token=token, ca=ca, timeout=timeout)
    from localdev.profile import connect as from_profile

    return from_profile(timeout=timeout)
