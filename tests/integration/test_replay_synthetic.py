"""SYNTHETIC history for the replay: real rows shifted in time, labelled, with correct .CHECKSUMs."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import date
from pathlib import Path

from streamforge.stack.binance_replay.catalog import REPO_DATA_DIR, Catalog
from streamforge.stack.binance_replay.synthetic import write_kline_months

DAY_MS = 86_400_000


def _rows(body: bytes) -> list[list[str]]:
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        (member,) = zf.namelist()
        return [line.split(",") for line in zf.read(member).decode().splitlines()]


def test_a_synthetic_month_is_served_as_published_and_cut_into_days(tmp_path: Path) -> None:
    (month_zip,) = write_kline_months(tmp_path, date(2021, 2, 1), 1)
    assert "SYNTHETIC" in (tmp_path / "SYNTHETIC.md").read_text()
    catalog = Catalog([tmp_path])
    month = catalog.kline_archive("spot", "BTCUSDT", "1m", "2021-02")
    assert month is not None and month.body == month_zip.read_bytes()
    digest = hashlib.sha256(month.body).hexdigest()
    assert month.checksum == f"{digest}  BTCUSDT-1m-2021-02.zip".encode()
    rows = _rows(month.body)
    assert len(rows) == 28 * 1440
    opens = [int(r[0]) for r in rows]
    assert opens == list(range(1_612_137_600_000, 1_612_137_600_000 + 28 * DAY_MS, 60_000))
    assert all(int(r[6]) == int(r[0]) + 59_999 for r in rows)
    # Day 1 of the month repeats the real 2020-01-01, day 2 the real 2020-01-02, ... (values untouched).
    real = _rows((REPO_DATA_DIR / "spot/klines/1m/BTCUSDT-1m-2020-01-02.zip").read_bytes())
    assert [r[1:6] for r in rows[1440:2880]] == [r[1:6] for r in real]
    day = catalog.kline_archive("spot", "BTCUSDT", "1m", "2021-02-02")
    assert day is not None and _rows(day.body) == rows[1440:2880]
