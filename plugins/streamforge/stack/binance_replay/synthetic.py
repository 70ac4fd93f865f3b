"""SYNTHETIC history for benchmarks and tests: real Binance rows shifted in time, never passed off as real.

Long histories (a year of 1m candles, a month of aggTrades) do not exist in the bundled data, so
they are made from the real days it has: day k of the synthetic range repeats real day
k mod n with its timestamps shifted (aggTrades also get their ids shifted, so the trade chain
stays unbroken). Prices therefore jump at day boundaries: the data is fit for moving and
counting records, not for analysis. Every root written here holds SYNTHETIC.md saying so, and
lives in a directory of its own, apart from the real data (plugins/.../data/binance).

The files follow data.binance.vision's layout with correct `.CHECKSUM`s, so the replay serves
them like real ones (its Catalog takes the root as one more data dir):

    <root>/spot/klines/<interval>/<SYMBOL>-<interval>-<YYYY-MM>.zip      monthly kline files
    <root>/<market>/aggTrades/<SYMBOL>-aggTrades-<YYYY-MM-DD>.zip        daily aggTrades files
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from .catalog import DAY_MS, REPO_DATA_DIR, build_zip, checksum_text, day_start_ms, to_ms

SHARED_AGG_DAY = ("futures-cm", "BTCUSD_PERP", date(2026, 5, 8))  # the real whole aggTrades day of shared/data
REAL_1M_DAYS = tuple(date(2020, 1, d) for d in (1, 2, 3))  # the bundled real BTCUSDT 1m days


_HEADER = (
    "# SYNTHETIC data: not market data\n\n"
    "Made by streamforge.stack.binance_replay.synthetic from real Binance rows shifted in time (see its\n"
    "docstring); fit for moving and counting records only.\n\n"
)


def _label(root: Path, what: str) -> None:
    note = root / "SYNTHETIC.md"
    text = note.read_text() if note.exists() else _HEADER
    if f"* {what}\n" not in text:
        note.write_text(text + f"* {what}\n")


def _csv_lines(path: Path) -> list[bytes]:
    with zipfile.ZipFile(path) as zf:
        member = next(n for n in zf.namelist() if n.endswith(".csv"))
        raw = zf.read(member)
    lines = [ln for ln in raw.splitlines(keepends=True) if ln.strip()]
    return lines[1:] if lines and not lines[0][:1].isdigit() else lines  # futures files have a header


def _write_zip(folder: Path, name: str, payload: bytes, when: datetime) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    body = build_zip(name[:-4] + ".csv", payload, when)
    (folder / name).write_bytes(body)
    (folder / f"{name}.CHECKSUM").write_bytes(checksum_text(hashlib.sha256(body).hexdigest(), name))
    return folder / name


def _months(first: date, count: int) -> list[date]:
    out, month = [], first.replace(day=1)
    for _ in range(count):
        out.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return out


def write_kline_months(
    root: Path,
    first_month: date,
    months: int,
    *,
    symbol: str = "BTCUSDT",
    interval: str = "1m",
    source_days: Sequence[date] = REAL_1M_DAYS,
    source_dir: Path = REPO_DATA_DIR,
) -> list[Path]:
    """Monthly kline zips (+ .CHECKSUM) for `months` calendar months from `first_month`, made of the
    real `source_days` repeated in turn and shifted in time. Returns the zips written."""
    folder = source_dir / "spot" / "klines" / interval
    sources = [(day_start_ms(d), _csv_lines(folder / f"{symbol}-{interval}-{d.isoformat()}.zip")) for d in source_days]
    written, k = [], 0
    for month in _months(first_month, months):
        payload = io.BytesIO()
        day = month
        while day.month == month.month:
            source_ms, lines = sources[k % len(sources)]
            shift = day_start_ms(day) - source_ms
            for line in lines:
                cells = line.rstrip(b"\r\n").split(b",")
                cells[0] = str(to_ms(int(cells[0])) + shift).encode()
                cells[6] = str(to_ms(int(cells[6])) + shift).encode()
                payload.write(b",".join(cells) + b"\n")
            day += timedelta(days=1)
            k += 1
        name = f"{symbol}-{interval}-{month:%Y-%m}.zip"
        when = datetime(day.year, day.month, day.day, tzinfo=UTC)
        written.append(_write_zip(root / "spot" / "klines" / interval, name, payload.getvalue(), when))
    span = f"{{{first_month:%Y-%m}..{month:%Y-%m}}}"
    real = ", ".join(d.isoformat() for d in source_days)
    _label(root, f"spot/klines/{interval}/{symbol}-{interval}-{span}.zip: the real {symbol} {interval} days {real}")
    return written


def write_agg_trade_days(
    root: Path,
    days: Sequence[date],
    *,
    per_day: int | None = None,
    source: tuple[str, str, date] = SHARED_AGG_DAY,
    source_dir: Path | None = None,
) -> list[Path]:
    """Daily aggTrades zips (+ .CHECKSUM) for `days` (consecutive), each the real source day (its first
    `per_day` trades) shifted in time, aggregate and trade ids continuing across days. Returns the zips."""
    from .catalog import shared_data_dir

    market, symbol, real_day = source
    base = source_dir or shared_data_dir() / "binance"
    path = base / market / "aggTrades" / f"{symbol}-aggTrades-{real_day.isoformat()}.zip"
    rows = [line.rstrip(b"\r\n").split(b",") for line in _csv_lines(path)][:per_day]
    span_ids = int(rows[-1][0]) - int(rows[0][0]) + 1
    span_trades = int(rows[-1][4]) - int(rows[0][3]) + 1
    written = []
    for k, day in enumerate(days):
        shift_ms = day_start_ms(day) - day_start_ms(real_day)
        payload = io.BytesIO()
        for cells in rows:
            out = list(cells)
            out[0] = str(int(cells[0]) + k * span_ids).encode()
            out[3] = str(int(cells[3]) + k * span_trades).encode()
            out[4] = str(int(cells[4]) + k * span_trades).encode()
            out[5] = str(to_ms(int(cells[5])) + shift_ms).encode()
            payload.write(b",".join(out) + b"\n")
        name = f"{symbol}-aggTrades-{day.isoformat()}.zip"
        when = datetime.fromtimestamp((day_start_ms(day) + DAY_MS) / 1000, UTC)
        written.append(_write_zip(root / market / "aggTrades", name, payload.getvalue(), when))
    _label(
        root,
        f"{market}/aggTrades/{symbol}-aggTrades-{{{days[0]}..{days[-1]}}}.zip: the real {symbol} aggTrades day "
        f"{real_day} ({'all' if per_day is None else f'first {per_day}'} trades) per day, ids continued",
    )
    return written
