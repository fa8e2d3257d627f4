"""Free TCP ports for throwaway clusters (tests, benchmarks, --localdev-ephemeral).

Chosen below 32768: Linux hands out client source ports from 32768-60999, and a server told to listen on
one of those collides now and then with some client's socket.
"""

from __future__ import annotations

import random
import socket

_handed_out: set[int] = set()


def free_port(low: int = 20000, high: int = 32000) -> int:
    for _ in range(1000):
        port = random.randint(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port between {low} and {high}")


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_taken(service: str, host: str, port: int, started_nothing: bool = False):
    """The BadInput for a port another program holds (the runtimes and `up` say it the same way)."""
    from localdev.errors import BadInput

    return BadInput(f"port {port} on {host} is already in use by another program, so {service} cannot start: "
                    f"stop that program or choose another port ([services.{service}] port = ... in localdev.toml, "
                    f"or LOCALDEV_{service.upper()}_PORT)" + ("; nothing was started" if started_nothing else ""))


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket (the agent's team-mode listener, the AWS gateway's ports)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: a TLS response goes out as several small writes, and with Nagle
    # each waited for the client's delayed ACK (about 40 ms a request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(512)
    return sock
