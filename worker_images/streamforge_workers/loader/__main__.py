"""`python -m streamforge_workers.loader`: load one window of Binance data into the data topic.

Env: LoaderSettings (TYPE api_candles_{interval} | api_trades, TIME_RANGE half-open UTC,
LOADER_SOURCE auto | rest | archive, BINANCE_API_URL, BINANCE_ARCHIVE_URL, ...). The body
returns the number of records produced; the runtime turns that into `finished`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, cast

from streamforge.contracts.config import LoaderSettings
from streamforge.contracts.gaps import GapPolicy
from streamforge.contracts.messages import Status
from streamforge.contracts.names import Component, DataType
from streamforge_workers.loader.archive import ArchiveClient
from streamforge_workers.loader.binance_rest import BinanceRest
from streamforge_workers.loader.hooks import Hooks
from streamforge_workers.loader.monthly import use_monthly_archives
from streamforge_workers.loader.produce import DataProducer
from streamforge_workers.loader.sources import RecordSource, gap_summary, iso, plan
from streamforge_workers.runtime.worker import FatalError, WorkerContext, run

# Stop flag and progress are looked at every this many records (well under a second).
CHECK_EVERY = 500

DESCRIPTION = (
    "Load one window (TIME_RANGE) of Binance klines or aggTrades for SYMBOL from the REST API "
    "and/or the data.binance.vision daily archive into KAFKA_TOPIC, then write the end-of-stream "
    "marker to every partition."
)


def check_window(settings: LoaderSettings, now: datetime) -> None:
    """A window the loader can complete: not in the future (its length is checked by the settings)."""
    window = settings.time_range
    if window.end > now:
        raise FatalError(
            f"TIME_RANGE {window.iso()} ends in the future (now {now.isoformat(timespec='seconds')}); "
            "only completed windows can be loaded"
        )


def body(ctx: WorkerContext) -> int:
    settings = cast(LoaderSettings, ctx.settings)
    data_type = DataType.parse(settings.type)
    window = settings.time_range
    now = datetime.now(UTC)
    check_window(settings, now)

    def notify(message: str, extra: dict[str, Any]) -> None:
        ctx.telemetry.emit(Status.LOADING, message, records_written=ctx.records, extra=extra)

    def heartbeat(activity: str) -> None:
        ctx.progress(ctx.records, f"{ctx.records} records; {activity}")

    hooks = Hooks(wait=ctx.wait, check_stop=ctx.check_stop, notify=notify, heartbeat=heartbeat)
    segments = use_monthly_archives(
        plan(window.start_ms, window.end_ms, settings.loader_source, data_type, now.date()), now.date()
    )
    archive_months = sum(1 for s in segments if s.monthly)
    archive_days = sum(1 for s in segments if s.source == "archive" and not s.monthly)
    rest_parts = len(segments) - archive_days - archive_months
    notify(
        f"loading {settings.symbol} {data_type.name} {window.iso()}: "
        + (f"{archive_months} month(s) from the monthly archive, " if archive_months else "")
        + f"{archive_days} day(s) from the archive, {rest_parts} part(s) from the REST API",
        {"source": settings.loader_source.value, "plan": [s.describe() for s in segments]},
    )

    producer = DataProducer(settings.kafka_config(), settings.kafka_topic, f"{settings.telemetry_producer_id}-data")
    done = False
    try:
        partitions = producer.partitions()
        with (
            tempfile.TemporaryDirectory(prefix="streamforge-loader-", ignore_cleanup_errors=True) as tmp,
            BinanceRest(
                settings.binance_api_url,
                hooks,
                weight_budget=settings.binance_weight_budget,
                max_wait_seconds=settings.binance_max_wait_seconds,
            ) as rest,
            ArchiveClient(hooks, Path(tmp)) as archive,
        ):
            source = RecordSource(
                symbol=settings.symbol,
                data_type=data_type,
                mode=settings.loader_source,
                rest=rest,
                archive=archive,
                archive_base=settings.binance_archive_url,
                hooks=hooks,
                page_limit=settings.batch_size,
            )
            count = 0
            started = time.monotonic()
            for record in source.records(segments):
                producer.send(record)
                count += 1
                if count % CHECK_EVERY == 0:
                    ctx.check_stop()
                    at = getattr(record, data_type.time_field)
                    ctx.progress(count, f"{count} records, up to {iso(at)}", position=iso(at))
            ctx.check_stop()
            ctx.progress(count)
            if source.gaps and settings.gaps is GapPolicy.FAIL:
                raise FatalError(
                    f"exchange gaps in {settings.symbol} {data_type.name} (GAPS=fail): {gap_summary(source.gaps)}"
                )
            ctx.result_extra.update(source.result_extra())
            producer.finish(count, partitions)
            done = True
            elapsed = time.monotonic() - started
            ctx.log.info(
                "loaded %d records in %.1f s",
                count,
                elapsed,
                extra={
                    "records": count,
                    "seconds": round(elapsed, 3),
                    "rate_per_s": round(count / max(elapsed, 1e-6)),
                },
            )
            return count
    finally:
        if not done:
            producer.close()


def main(argv: Sequence[str] | None = None) -> NoReturn:
    run(Component.LOADER.value, LoaderSettings, body, argv, description=DESCRIPTION)


if __name__ == "__main__":
    main()
