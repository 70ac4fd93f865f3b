"""Free TCP ports on the loopback interface, for servers the stack starts.

A port is chosen now and bound later by another process (Kafka, the Airflow API server), so
something else may take it in between. Ports the kernel hands to outgoing connections come from
its ephemeral range (ip_local_port_range, 32768-60999 by default), and a busy test session opens
thousands of those: a port from that range was taken by a client socket before the API server
bound it. So ports are drawn at random from below that range, where only listeners live, and
checked free by binding them; never the same one twice in a process.
"""

import random
import socket
from pathlib import Path

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port free right now on 127.0.0.1, outside the kernel's range for outgoing connections."""
    top = _ephemeral_start()
    if top - _LOWEST >= 1_000:
        for _ in range(200):
            port = random.randrange(_LOWEST, top)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    # Not Linux, or no room below the ephemeral range: let the kernel pick.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _handed_out.add(port)
    return port
