"""data.binance.vision daily archives: download, verify against .CHECKSUM, stream the CSV.

A zip is streamed to a temporary file while its sha256 is computed; nothing is read from it
before the digest matches the published `.CHECKSUM`. Rows are then read line by line from
the zip member, so a day of trades never sits in memory as a list.
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx

from streamforge_workers.loader.hooks import Hooks
from streamforge_workers.loader.metrics import ARCHIVE_BYTES, REQUESTS
from streamforge_workers.loader.retry import Transient, classify, with_retries
from streamforge_workers.runtime.worker import FatalError

TIMEOUT = httpx.Timeout(30.0, connect=5.0)
CHUNK = 256 * 1024
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def kline_url(base: str, symbol: str, interval: str, day: date) -> str:
    return f"{base.rstrip('/')}/daily/klines/{symbol}/{interval}/{symbol}-{interval}-{day.isoformat()}.zip"


def agg_trades_url(base: str, symbol: str, day: date) -> str:
    return f"{base.rstrip('/')}/daily/aggTrades/{symbol}/{symbol}-aggTrades-{day.isoformat()}.zip"


class ArchiveMissing(Exception):
    """The archive has no file for that day (HTTP 404)."""

    def __init__(self, url: str, note: str = "") -> None:
        super().__init__(f"archive file not found: {url} (HTTP 404{note})")
        self.url = url


def _status_error(resp: httpx.Response, url: str) -> Exception:
    if resp.status_code == 404:
        return ArchiveMissing(url)
    if resp.status_code >= 500:
        return Transient("5xx", f"HTTP {resp.status_code}")
    return FatalError(f"archive download {url} refused: HTTP {resp.status_code}")


class ArchiveClient:
    def __init__(
        self,
        hooks: Hooks,
        workdir: Path,
        *,
        attempts: int = 5,
        timeout: httpx.Timeout = TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.hooks = hooks
        self.workdir = workdir
        self.attempts = attempts
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "streamforge-loader"},
            follow_redirects=True,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ArchiveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- download + verify -------------------------------------------------------------------
    def download(self, url: str) -> Path:
        """The verified zip as a temporary file (the caller deletes it). ArchiveMissing on 404."""
        try:
            expected = self._expected_digest(url)
        except ArchiveMissing as exc:
            raise ArchiveMissing(url, " for its .CHECKSUM") from exc
        path, actual = with_retries(
            lambda: self.hooks.call(lambda: self._fetch(url), f"downloading {url}"),
            self.hooks,
            f"archive download {url}",
            attempts=self.attempts,
        )
        if actual != expected:
            path.unlink(missing_ok=True)
            raise FatalError(
                f"checksum mismatch for {url}: .CHECKSUM says sha256 {expected}, downloaded file has {actual}"
            )
        ARCHIVE_BYTES.inc(path.stat().st_size)
        return path

    def _expected_digest(self, url: str) -> str:
        checksum_url = url + ".CHECKSUM"

        def fetch() -> str:
            REQUESTS.inc()
            try:
                resp = self.hooks.call(lambda: self._http.get(checksum_url))
            except httpx.TransportError as exc:
                raise classify(exc) from exc
            if resp.status_code != 200:
                raise _status_error(resp, checksum_url)
            first = resp.text.strip().split()
            if not first or not _SHA256.match(first[0]):
                raise Transient("invalid_body", f"{checksum_url} holds no sha256 digest: {resp.text[:100]!r}")
            return first[0].lower()

        return with_retries(fetch, self.hooks, f"archive download {checksum_url}", attempts=self.attempts)

    def _fetch(self, url: str) -> tuple[Path, str]:
        """Stream `url` into a temporary file, hashing on the way (runs in Hooks.call's thread)."""
        REQUESTS.inc()
        digest = hashlib.sha256()
        fd, name = tempfile.mkstemp(dir=self.workdir, suffix=".zip")
        path = Path(name)
        try:
            with open(fd, "wb") as out, self._http.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise _status_error(resp, url)
                for chunk in resp.iter_bytes(CHUNK):
                    self.hooks.check_stop()  # an abandoned download stops at the next chunk
                    digest.update(chunk)
                    out.write(chunk)
        except httpx.TransportError as exc:
            path.unlink(missing_ok=True)
            raise classify(exc) from exc
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path, digest.hexdigest()

    # -- reading -----------------------------------------------------------------------------
    @staticmethod
    def lines(path: Path, url: str) -> Iterator[str]:
        """Text lines of the zip's single CSV member, decompressed as they are read."""
        try:
            with zipfile.ZipFile(path) as zf:
                members = [n for n in zf.namelist() if n.lower().endswith(".csv")]
                if len(members) != 1:
                    raise FatalError(f"{url}: expected one CSV file in the zip, found {zf.namelist()}")
                with zf.open(members[0]) as raw:
                    yield from io.TextIOWrapper(raw, encoding="utf-8", newline="")
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            zlib.error,
            EOFError,
            OSError,
            UnicodeDecodeError,
        ) as exc:
            raise FatalError(f"{url}: unreadable zip ({exc})") from exc
