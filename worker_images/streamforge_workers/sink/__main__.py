"""`python -m streamforge_workers.sink`: arango-candles or arango-trades, chosen by TYPE."""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from typing import NoReturn, cast

from confluent_kafka import Consumer

from streamforge.contracts.config import SinkSettings
from streamforge_workers.runtime.worker import WorkerContext, run
from streamforge_workers.sink.arango_writer import ArangoWriter
from streamforge_workers.sink.engine import SinkEngine, consumer_config

DESCRIPTION = (
    "StreamForge ArangoDB sink: consumes KAFKA_TOPIC from the beginning, validates every record "
    "(candles or aggTrades, by TYPE), writes them in batches into COLLECTION_NAME (replace on "
    "_key) and finishes once the end-of-stream marker is committed on every partition."
)


def body(ctx: WorkerContext) -> int:
    settings = cast(SinkSettings, ctx.settings)
    writer = ArangoWriter(settings, component=ctx.component, sleep=ctx.wait, log=ctx.log)
    consumer = Consumer(consumer_config(settings))
    quiet_gc()
    cpu_started = time.process_time()
    try:
        total = SinkEngine(ctx, settings, writer, consumer).run()
        # CPU of the whole process (librdkafka's threads included) over the body: records per
        # CPU-second without interpreter start-up, as the benchmark's baselines are timed.
        ctx.result_extra["cpu_s"] = round(time.process_time() - cpu_started, 3)
        return total
    finally:
        consumer.close()
        writer.close()


def quiet_gc() -> None:
    """Keep the cyclic GC off the hot loop: it found nothing to free there and cost ~10 % of the CPU.

    Each batch allocates thousands of short-lived, acyclic objects (Kafka messages; the documents
    are untracked msgspec structs), which refcounting frees at once. With the default thresholds
    they still triggered a young collection every few hundred and regular full ones over every
    module loaded at start-up. Start-up objects are frozen out of the collector and young
    collections run every 50,000 allocations instead of 700; cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    run(
        lambda settings: settings.component.value,
        SinkSettings,
        body,
        argv,
        description=DESCRIPTION,
    )


if __name__ == "__main__":
    main()
