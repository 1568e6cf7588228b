"""A free TCP port on a host: what the Ray Serve deployment, the tests' real servers and the
benchmarks' servers bind to when no port is given.

Why the OS picks: a fixed port collides with whatever else runs on the machine (another test
worker, a user's server); binding to port 0 and reading the port back is the one portable way.
The port is free when asked, not reserved: the caller binds it at once.
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` (IPv4 or IPv6) that nothing listens on now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
