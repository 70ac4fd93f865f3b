"""free_port: below the kernel's range for outgoing connections, free, and never handed out twice."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streamforge.stack.ports import free_port

RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@pytest.mark.skipif(not RANGE.exists(), reason="Linux only: the ephemeral range is read from /proc")
def test_ports_are_free_distinct_and_below_the_ephemeral_range() -> None:
    low = int(RANGE.read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(10_000 <= p < low for p in ports), ports
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", ports[0]))  # still free: nothing holds it after the check


@pytest.mark.skipif(not RANGE.exists(), reason="Linux only: the ephemeral range is read from /proc")
def test_a_port_someone_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamforge.stack import ports

    busy, spare = free_port(), free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", busy))
        taken.listen()
        ports._handed_out.discard(busy)  # as if another process had started a server there
        ports._handed_out.discard(spare)
        draws = iter([busy, busy, spare])
        monkeypatch.setattr(ports.random, "randrange", lambda _lo, _hi: next(draws))
        assert free_port() == spare
