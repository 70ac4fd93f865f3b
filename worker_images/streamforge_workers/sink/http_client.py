"""python-arango's HTTP client for the sink, with requests' environment lookups made once.

A requests session with `trust_env` reads the proxy variables (and no_proxy, the CA-bundle
variables) from os.environ on every request; with a pod's hundred-odd variables that was a third
of the CPU the sink spends per batch outside its own code. The sink talks to one host, so its
session resolves those settings once, when it is created, and then stops looking: the same
proxies, the same certificate bundle, read once.
"""

from __future__ import annotations

import os

from arango.http import DefaultHTTPClient
from requests import Session
from requests.utils import get_environ_proxies


class SinkHTTPClient(DefaultHTTPClient):
    """DefaultHTTPClient (same timeout and retry parameters) whose sessions read the environment once."""

    def create_session(self, host: str) -> Session:
        session = super().create_session(host)
        session.proxies.update(get_environ_proxies(host))  # {} when no_proxy covers the host
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle and session.verify is True:
            session.verify = bundle
        session.trust_env = False
        return session
