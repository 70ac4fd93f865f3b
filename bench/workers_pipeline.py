"""`python -m bench workers [--trades N] [--quick]`: loader → Kafka → sink throughput, with baselines.

One run starts one Kafka broker, one ArangoDB test server and one Binance replay server, and
measures in that same setup:

StreamForge (the real worker processes, `python -m streamforge_workers.loader|sink`):
  * loader alone, sink alone, and both together (end to end) over real windows: BTCUSDT 1m
    2020-01-01..03 (4,320 candles), BTCUSDT 1h 2024-08 (744 candles), BTCUSD_PERP aggTrades
    2026-05-08 (105,280 trades, COIN-M archive). The small candle windows are repeated.
  * the sink alone over SYNTHETIC topics, because the replay holds only one real trade day:
    the real day produced --trades/105,280 times with shifted trade ids and timestamps
    (≥ 1 M trades by default), and the 3 real candle days repeated with shifted open times.

Baselines on the same messages (read back from the loader's topic, or copy 0 of a synthetic
set, which is byte-identical to the loader's output):
  (a) the original services' pattern: one synchronous produce+flush per message and one
      python-arango insert(doc, overwrite=True) per document; capped, the rate extrapolated;
  (b) raw confluent-kafka: async batched produce (the loader's producer settings) and a consume
      with no validation and no ArangoDB — the upper bound for the Kafka part;
  (c) on the synthetic sets: raw consume + bulk insert of pre-decoded documents into the same
      ArangoDB server with the sink's batch size and request — the upper bound for the sink.

Rates are records/s; ratios are StreamForge / baseline within this run. Nothing is asserted
about time: this is a measurement, not a test. Results: bench/results/workers-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import confluent_kafka

from bench.workers_stack import (
    RESULTS_DIR,
    Child,
    Stack,
    machine_busy_s,
    run_json_child,
    start_child,
    vm_hwm_kb,
    vm_rss_kb,
    wait_all,
)
from streamforge.contracts.config import SinkSettings
from streamforge.contracts.messages import Event, Status

TRADES_IN_DAY = 105_280
CANDLES_3D = 4_320
DEFAULT_TRADES = 10 * TRADES_IN_DAY  # 1,052,800
QUICK_TRADES = 2 * TRADES_IN_DAY
DEFAULT_CANDLES_SYNTH = 24 * CANDLES_3D  # 103,680 (72 days of 1m)
QUICK_CANDLES_SYNTH = 5 * CANDLES_3D
SMALL = 10_000  # below this, fixed costs (connections, first fetch, setup) dominate a rate
SMALL_MARK = " †"
ORIGINAL_CAP = 20_000
# The sink's import size is its own setting (ARANGO_BATCH_SIZE, default 5000); on the big trades
# set it is also measured, with its own (c), at the loader's 1000 (what it used to share).
SINK_BATCH_VARIANT = 1_000
QUICK_ORIGINAL_CAP = 2_000


# (name, symbol, type, TIME_RANGE, archive, records, kind)
REAL_WINDOWS: list[tuple[str, str, str, str, str, int, str]] = [
    ("candles_1m_3d", "BTCUSDT", "api_candles_1m", "2020-01-01:2020-01-03", "spot", 4_320, "candles"),
    ("candles_1h_month", "BTCUSDT", "api_candles_1h", "2024-08-01:2024-08-31", "spot", 744, "candles"),
    ("trades_day", "BTCUSD_PERP", "api_trades", "2026-05-08:2026-05-08", "cm", TRADES_IN_DAY, "trades"),
]


def _py(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def _rate(n: int, seconds: float | None) -> float | None:
    return round(n / seconds, 1) if seconds and seconds > 0 else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def _loadavg() -> list[float]:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return []


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None


class Bench:
    def __init__(self, stack: Stack, log_dir: Path, *, quick: bool, trades: int, repeats: int) -> None:
        self.stack = stack
        self.log_dir = log_dir
        self.quick = quick
        self.trades = trades
        self.repeats = repeats
        self.candles_synth = QUICK_CANDLES_SYNTH if quick else DEFAULT_CANDLES_SYNTH
        self.original_cap = QUICK_ORIGINAL_CAP if quick else ORIGINAL_CAP
        self.results: dict[str, Any] = {}
        self.foreign_loads: list[float] = []

    def say(self, text: str) -> None:
        print(f"[bench workers {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    # -- one StreamForge run ------------------------------------------------------------------
    def _ids(self, name: str) -> tuple[str, str]:
        h6 = uuid.uuid4().hex[:6]
        return f"wf-bench-{name.replace('_', '-')}-{h6}", h6

    def _archive(self, which: str) -> str:
        urls = self.stack.replay_urls
        return urls["futures_cm_archive_url"] if which == "cm" else urls["archive_url"]

    def _finished(self, events: list[Event], component: str, n: int) -> tuple[Event, Event]:
        mine = [e for e in events if e.component == component]
        terminal = [e for e in mine if e.is_terminal]
        started = [e for e in mine if e.status is Status.STARTED]
        if len(terminal) != 1 or terminal[0].status is not Status.FINISHED or not started:
            raise RuntimeError(f"{component}: expected started + finished, got {[e.status for e in mine]}")
        if terminal[0].records_written != n:
            raise RuntimeError(f"{component} finished with {terminal[0].records_written} records, expected {n}")
        return started[0], terminal[0]

    def _check_stored(self, collection: str, n: int) -> None:
        stored = self.stack.collection_count(collection)
        if stored != n:
            raise RuntimeError(f"collection {collection} holds {stored} documents, expected {n}")

    def run_workers(
        self,
        name: str,
        *,
        symbol: str,
        data_type: str,
        n: int,
        loader: tuple[str, str] | None,  # (TIME_RANGE, archive url) or None: sink only
        sink: bool,
        topic: str | None = None,
        timeout: float = 600,
        sink_env: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Loader and/or sink as real processes (started together); their rates and resources."""
        queue_id, h6 = self._ids(name)
        sink_component = "arango-trades" if data_type == "api_trades" else "arango-candles"
        if topic is None:
            topic = f"{queue_id}-data"
            self.stack.kafka.create_topics([topic])
        collection = f"bench_{name}_{h6}"
        children: dict[str, Child] = {}
        arango_cpu, broker_cpu = self.stack.arango_cpu_s(), self.stack.broker_cpu_s()
        infra_cpu, machine = self.stack.infra_cpu_s(), machine_busy_s()
        if sink:
            env = self.stack.sink_env(queue_id, symbol, data_type, topic, collection) | (sink_env or {})
            children[sink_component] = start_child(
                f"{queue_id}-sink", _py("streamforge_workers.sink"), env, self.log_dir
            )
        if loader is not None:
            time_range, archive = loader
            env = self.stack.loader_env(queue_id, symbol, data_type, topic, time_range, archive)
            children["loader"] = start_child(f"{queue_id}-loader", _py("streamforge_workers.loader"), env, self.log_dir)
        wait_all(children.values(), timeout)
        arango_cpu = self.stack.arango_cpu_s() - arango_cpu
        broker_cpu = self.stack.broker_cpu_s() - broker_cpu
        machine = machine_busy_s() - machine
        ours = self.stack.infra_cpu_s() - infra_cpu + sum(c.cpu_s for c in children.values())
        span = max(c.ended or 0.0 for c in children.values()) - min(c.started for c in children.values())
        # CPU that processes outside this benchmark used meanwhile (other workloads on the machine).
        foreign = max(0.0, machine - ours) / max(span * (os.cpu_count() or 1), 1e-6)
        self.foreign_loads.append(foreign)
        events = self.stack.events(queue_id, set(children))
        out: dict[str, Any] = {
            "n": n,
            "topic": topic,
            "queue_id": queue_id,
            "broker_cpu_s": round(broker_cpu, 2),
            "foreign_cpu_share": round(foreign, 3),
        }
        first_start = min(c.started for c in children.values())
        for component, child in children.items():
            started, finished = self._finished(events, component, n)
            body_s = float(finished.extra["duration_s"])
            role = "loader" if component == "loader" else "sink"
            out[role] = {
                **child.result(),
                "body_s": body_s,
                "rate_body": _rate(n, body_s),
                "rate_process": _rate(n, child.wall_s),
                "records_per_cpu_s": _rate(n, child.cpu_s),
                "records_per_cpu_s_body": _rate(n, float(finished.extra.get("cpu_s") or 0)),
                "startup_s": round(child.wall_s - body_s, 3),
                "started_ts": started.timestamp,
                "finished_ts": finished.timestamp,
            }
        for role in ("loader", "sink"):
            if role in out:
                out[role]["broker_cpu_s_during_run"] = round(broker_cpu, 2)
                out[role]["foreign_cpu_share"] = round(foreign, 3)
        if sink:
            out["sink"]["arango_server_cpu_s"] = round(arango_cpu, 2)
            out["sink"]["arango_server_cpu_ms_per_1k_docs"] = round(arango_cpu / n * 1e6, 1)
            self._check_stored(collection, n)
            self.stack.drop_collection(collection)
        if sink and loader is not None:
            last_end = max(c.ended or 0.0 for c in children.values())
            wall = last_end - first_start
            body = out["sink"]["finished_ts"] - out["loader"]["started_ts"]
            out["e2e"] = {
                "wall_s": round(wall, 3),
                "rate_wall": _rate(n, wall),
                "body_s": round(body, 3),
                "rate_body": _rate(n, body),
            }
        return out

    # -- baselines ------------------------------------------------------------------------------
    def baseline_raw(self, name: str, src: str) -> dict[str, Any]:
        dst = self.stack.new_topic(f"bench-raw-{name}")
        result, _ = run_json_child(
            f"raw-{name}-{dst[-8:]}",
            [*_py("bench.workers_baselines"), "raw", *self.stack.connection_args(), "--src", src, "--dst", dst],
            self.log_dir,
            timeout=600,
        )
        self.stack.delete_topics([dst])
        n = result["n"]
        result["rate_produce"] = _rate(n, result["produce_s"])
        result["rate_consume"] = _rate(n, result["consume_s"])
        return result

    def baseline_original(self, name: str, src: str, kind: str) -> dict[str, Any]:
        dst = self.stack.new_topic(f"bench-orig-{name}")
        collection = f"bench_original_{name}_{dst[-8:]}"
        arango_cpu = self.stack.arango_cpu_s()
        result, _ = run_json_child(
            f"original-{name}-{dst[-8:]}",
            [
                *_py("bench.workers_baselines"),
                "original",
                *self.stack.connection_args(),
                "--src",
                src,
                "--dst",
                dst,
                "--cap",
                str(self.original_cap),
                "--collection",
                collection,
                "--kind",
                kind,
            ],
            self.log_dir,
            timeout=900,
        )
        arango_cpu = self.stack.arango_cpu_s() - arango_cpu
        self.stack.delete_topics([dst])
        self.stack.drop_collection(collection)
        n = result["n"]
        result["cap"] = self.original_cap
        result["arango_server_cpu_s"] = round(arango_cpu, 2)
        result["arango_server_cpu_ms_per_1k_docs"] = round(arango_cpu / n * 1e6, 1)
        result["rate_produce"] = _rate(n, result["produce_s"])
        result["rate_consume"] = _rate(n, result["consume_s"])
        return result

    def synth_topic(self, name: str, kind: str, count: int) -> tuple[str, dict[str, Any]]:
        topic = self.stack.new_topic(f"bench-synth-{name}")
        result, _ = run_json_child(
            f"synth-{name}",
            [
                *_py("bench.workers_baselines"),
                "synth",
                *self.stack.connection_args(),
                "--topic",
                topic,
                "--kind",
                kind,
                "--count",
                str(count),
            ],
            self.log_dir,
            timeout=900,
        )
        result["rate_produce"] = _rate(result["n"], result["produce_s"])
        return topic, result

    def baseline_store(self, name: str, topic: str, kind: str, n: int, batch_size: int | None = None) -> dict[str, Any]:
        """(c): raw consume + bulk insert of pre-decoded documents, the sink's batch size (default: its default)."""
        collection = f"bench_store_{name}_{uuid.uuid4().hex[:6]}"
        arango_cpu = self.stack.arango_cpu_s()
        result, child = run_json_child(
            f"store-{name}",
            [
                *_py("bench.workers_baselines"),
                "store",
                *self.stack.connection_args(),
                "--topic",
                topic,
                "--collection",
                collection,
                "--kind",
                kind,
                "--batch-size",
                str(batch_size or SinkSettings.model_fields["arango_batch_size"].default),
            ],
            self.log_dir,
            timeout=1200,
        )
        arango_cpu = self.stack.arango_cpu_s() - arango_cpu
        self.stack.drop_collection(collection)
        result["rate_store"] = _rate(n, result["store_s"])
        result["records_per_cpu_s"] = _rate(n, result["cpu_s"])
        result["peak_rss_mb"] = child.result().get("peak_rss_mb")
        result["arango_server_cpu_ms_per_1k_docs"] = round(arango_cpu / n * 1e6, 1)
        return result

    def baseline_consume(self, name: str, topic: str, n: int) -> dict[str, Any]:
        result, _ = run_json_child(
            f"consume-{name}",
            [
                *_py("bench.workers_baselines"),
                "consume",
                *self.stack.connection_args(),
                "--topic",
                topic,
                "--expect",
                str(n),
            ],
            self.log_dir,
            timeout=600,
        )
        result["rate_consume"] = _rate(n, result["consume_s"])
        return result

    # -- stages ---------------------------------------------------------------------------------
    def warm_up(self) -> dict[str, Any]:
        """Exercise every path once before measuring: the broker's JIT (C2) compiles its hot
        produce, fetch and commit paths during the first seconds of traffic, which would
        otherwise slow whatever stage happens to run first. Not reported in the table."""
        self.say("warm-up: one synthetic trade day through raw produce/consume and the original pattern")
        began = time.monotonic()
        topic, synth = self.synth_topic("warmup", "trades", TRADES_IN_DAY)
        consume = self.baseline_consume("warmup", topic, TRADES_IN_DAY)
        saved, self.original_cap = self.original_cap, 1000
        try:
            original = self.baseline_original("warmup", topic, "trades")
        finally:
            self.original_cap = saved
        self.stack.delete_topics([topic])
        return {
            "seconds": round(time.monotonic() - began, 1),
            "rate_produce_raw": synth["rate_produce"],
            "rate_consume_raw": consume["rate_consume"],
            "rate_produce_original": original["rate_produce"],
            "rate_consume_original": original["rate_consume"],
        }

    def real_window(
        self, name: str, symbol: str, data_type: str, time_range: str, archive: str, n: int, kind: str
    ) -> None:
        repeats = self.repeats
        runs: list[dict[str, Any]] = []
        source_topic = ""
        for i in range(repeats):
            self.say(f"{name}: loader alone ({i + 1}/{repeats})")
            alone = self.run_workers(
                name, symbol=symbol, data_type=data_type, n=n, loader=(time_range, self._archive(archive)), sink=False
            )
            self.say(f"{name}: sink alone on the loader's topic ({i + 1}/{repeats})")
            sink_alone = self.run_workers(
                name, symbol=symbol, data_type=data_type, n=n, loader=None, sink=True, topic=alone["topic"]
            )
            self.say(f"{name}: loader and sink together ({i + 1}/{repeats})")
            e2e = self.run_workers(
                name, symbol=symbol, data_type=data_type, n=n, loader=(time_range, self._archive(archive)), sink=True
            )
            runs.append({"loader_alone": alone["loader"], "sink_alone": sink_alone["sink"], "e2e": e2e})
            if i == 0:
                source_topic = alone["topic"]
            else:
                self.stack.delete_topics([alone["topic"]])
            self.stack.delete_topics([e2e["topic"]])
        self.say(f"{name}: baseline (b) raw confluent-kafka")
        raw = self.baseline_raw(name, source_topic)
        self.say(f"{name}: baseline (a) original pattern (cap {self.original_cap})")
        original = self.baseline_original(name, source_topic, kind)
        self.stack.delete_topics([source_topic])
        self.results[name] = {
            "kind": kind,
            "n": n,
            "synthetic": False,
            "source": f"{symbol} {data_type} {time_range} (LOADER_SOURCE=auto: daily archives of the replay server)",
            "runs": runs,
            "streamforge": {
                "loader_rate_body": _median([r["loader_alone"]["rate_body"] for r in runs]),
                "loader_rate_process": _median([r["loader_alone"]["rate_process"] for r in runs]),
                "sink_rate_body": _median([r["sink_alone"]["rate_body"] for r in runs]),
                "sink_rate_process": _median([r["sink_alone"]["rate_process"] for r in runs]),
                "e2e_rate_wall": _median([r["e2e"]["e2e"]["rate_wall"] for r in runs]),
                "e2e_rate_body": _median([r["e2e"]["e2e"]["rate_body"] for r in runs]),
                "repeats": repeats,
                "aggregate": "median" if repeats > 1 else "single run",
            },
            "baseline_raw": raw,
            "baseline_original": original,
        }

    def synthetic_set(self, name: str, kind: str, count: int, original_from: str, *, measure_arango: bool) -> None:
        symbol, data_type = ("BTCUSD_PERP", "api_trades") if kind == "trades" else ("BTCUSDT", "api_candles_1m")
        real = "2026-05-08 BTCUSD_PERP aggTrades day" if kind == "trades" else "BTCUSDT 1m 2020-01-01..03 candles"
        self.say(f"{name}: producing {count:,} synthetic {kind} (real data repeated, shifted ids/times)")
        topic, synth = self.synth_topic(name, kind, count)
        self.say(f"{name}: baseline (b) raw consume")
        consume = self.baseline_consume(name, topic, count)
        self.say(f"{name}: baseline (c) raw consume + bulk insert of pre-decoded documents")
        store = self.baseline_store(name, topic, kind, count)
        arango: dict[str, Any] = {}
        if measure_arango:
            server = self.stack.restart_arango()  # a fresh server: its memory is this stage's alone
            arango = {"rss_before_mb": round(vm_rss_kb(server.pid or 0) / 1024, 1)}
        self.say(f"{name}: StreamForge sink alone over {count:,} records")
        run = self.run_workers(
            name, symbol=symbol, data_type=data_type, n=count, loader=None, sink=True, topic=topic, timeout=1200
        )
        if measure_arango:
            server = self.stack.arango
            assert server is not None
            # The collection was dropped after the count check; VmHWM is the peak while it held all.
            arango["peak_rss_mb"] = round(vm_hwm_kb(server.pid or 0) / 1024, 1)
            arango["docs"] = count
            arango["mb_per_100k_docs"] = round((arango["peak_rss_mb"] - arango["rss_before_mb"]) / count * 100_000, 1)
            self.stack.restart_arango()  # give the memory back
        variant = None
        if kind == "trades":
            batch = SINK_BATCH_VARIANT
            self.say(f"{name}: baseline (c) and the sink again with ARANGO_BATCH_SIZE={batch} (not the default)")
            variant_store = self.baseline_store(name, topic, kind, count, batch)
            variant = self.run_workers(
                name,
                symbol=symbol,
                data_type=data_type,
                n=count,
                loader=None,
                sink=True,
                topic=topic,
                timeout=1200,
                sink_env={"ARANGO_BATCH_SIZE": str(batch)},
            )["sink"]
            variant["batch_size"] = batch
            variant["baseline_store"] = variant_store
        self.stack.delete_topics([topic])
        original = self.results.get(original_from, {}).get("baseline_original", {"n": 0, "rate_consume": None})
        self.results[name] = {
            "kind": kind,
            "n": count,
            "synthetic": True,
            "source": (
                f"SYNTHETIC: the real {real} "
                f"produced {count / (TRADES_IN_DAY if kind == 'trades' else CANDLES_3D):.1f} times with shifted "
                f"{'trade ids and timestamps' if kind == 'trades' else 'open/close times'} straight into a data topic "
                "(contracts models); the SINK ran alone on it"
            ),
            "synth": synth,
            "streamforge": {
                "sink_rate_body": run["sink"]["rate_body"],
                "sink_rate_process": run["sink"]["rate_process"],
                "sink_peak_rss_mb": run["sink"]["peak_rss_mb"],
                "sink_records_per_cpu_s": run["sink"]["records_per_cpu_s"],
                "sink_records_per_cpu_s_body": run["sink"]["records_per_cpu_s_body"],
            },
            "baseline_store": store,
            "sink_run": run["sink"],
            "baseline_raw": {
                "n": count,
                "produce_s": synth["produce_s"],
                "rate_produce": synth["rate_produce"],
                "consume_s": consume["consume_s"],
                "rate_consume": consume["rate_consume"],
            },
            "baseline_original": {
                **original,
                "note": f"measured on {original_from} (its first {original['n']:,} messages are byte-identical "
                "to copy 0 of this set)",
            },
            "arango_server": arango,
            "sink_run_batch_variant": variant,
        }


# --------------------------------------------------------------------------------------------
# Report


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, r in results.items():
        sf, raw, orig = r["streamforge"], r["baseline_raw"], r["baseline_original"]
        label = f"{name}{' (synthetic)' if r['synthetic'] else ''}{SMALL_MARK if r['n'] < SMALL else ''}"
        if not r["synthetic"]:
            rows.append(
                {
                    "dataset": label,
                    "n": r["n"],
                    "stage": "produce (loader)",
                    "streamforge": sf["loader_rate_body"],
                    "original": orig["rate_produce"],
                    "raw": raw["rate_produce"],
                }
            )
        rows.append(
            {
                "dataset": label,
                "n": r["n"],
                "stage": "consume+store (sink)",
                "streamforge": sf["sink_rate_body"],
                "original": orig["rate_consume"],
                "raw": raw["rate_consume"],
            }
        )
        variant = r.get("sink_run_batch_variant")
        if variant:
            rows.append(
                {
                    "dataset": label,
                    "n": r["n"],
                    "stage": f"  sink, ARANGO_BATCH_SIZE={variant['batch_size']:,}",
                    "streamforge": variant["rate_body"],
                    "original": orig["rate_consume"],
                    "raw": raw["rate_consume"],
                }
            )
        if not r["synthetic"]:
            rows.append(
                {
                    "dataset": label,
                    "n": r["n"],
                    "stage": "end to end",
                    "streamforge": sf["e2e_rate_body"],
                    # The original services ran concurrently: their pipeline is at best its slower stage.
                    "original": min(orig["rate_produce"], orig["rate_consume"]),
                    "raw": min(raw["rate_produce"], raw["rate_consume"]),
                }
            )
    for row in rows:
        row["vs_original"] = _ratio(row["streamforge"], row["original"])
        row["vs_raw"] = _ratio(row["streamforge"], row["raw"])
    return rows


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:,.2f}{unit}"


def render_table(rows: list[dict[str, Any]]) -> str:
    headers = ["dataset", "records", "stage", "StreamForge/s", "(a) orig/s", "SF/(a)", "(b) raw/s", "SF/(b)"]
    body = [
        [
            r["dataset"],
            f"{r['n']:,}",
            r["stage"],
            _fmt(r["streamforge"]),
            _fmt(r["original"]),
            f"{r['vs_original']:.1f}x" if r["vs_original"] else "—",
            _fmt(r["raw"]),
            f"{r['vs_raw']:.2f}x" if r["vs_raw"] else "—",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(b) for b in body)])


def render_notes(results: dict[str, Any], meta: dict[str, Any]) -> str:
    notes = []
    n_rep = meta["repeats"]
    repeats = f"median of {n_rep} runs of each real window" if n_rep > 1 else "one run of each real window"
    big = next((r for r in results.values() if r["synthetic"] and r["kind"] == "trades"), None)
    if big:
        s, run = big["streamforge"], big["sink_run"]
        notes.append(
            f"sink peak RSS over {big['n']:,} trades: {s['sink_peak_rss_mb']:.0f} MB "
            f"(VmHWM {run['peak_rss_mb_vmhwm']:.0f} MB, ru_maxrss {run['peak_rss_mb_rusage']:.0f} MB); "
            f"{s['sink_records_per_cpu_s']:,.0f} records per sink CPU-second"
        )
        a = big["arango_server"]
        if a:
            notes.append(
                f"ArangoDB TEST server (own process, everything in memory): {a['rss_before_mb']:.0f} MB idle, "
                f"peak {a['peak_rss_mb']:.0f} MB holding {a['docs']:,} docs (~{a['mb_per_100k_docs']:.0f} MB per 100k) "
                "— the test server's memory, not the sink's"
            )
        notes.append(big["source"])
    for name, r in results.items():
        store = r.get("baseline_store")
        if store:
            s = r["streamforge"]
            notes.append(
                f"{name}: (c) raw consume + bulk insert of pre-decoded documents (batch {store['batch_size']:,}, "
                f"same server): {store['rate_store']:,.0f}/s, {store['records_per_cpu_s']:,.0f} records per CPU-s; "
                f"sink {s['sink_rate_body']:,.0f}/s = {_ratio(s['sink_rate_body'], store['rate_store'])}x (c), "
                f"{s['sink_records_per_cpu_s_body'] or 0:,.0f} records per sink CPU-s over its body "
                f"({s['sink_records_per_cpu_s']:,.0f} incl. interpreter start-up) = "
                f"{_ratio(s['sink_records_per_cpu_s_body'], store['records_per_cpu_s'])}x (c) per CPU-s"
            )
        variant = r.get("sink_run_batch_variant")
        if variant and variant.get("baseline_store"):
            vstore = variant["baseline_store"]
            notes.append(
                f"{name} at ARANGO_BATCH_SIZE={variant['batch_size']:,}: "
                f"(c) {vstore['records_per_cpu_s']:,.0f} records per CPU-s; "
                f"sink {variant['records_per_cpu_s_body'] or 0:,.0f} per sink CPU-s over its body = "
                f"{_ratio(variant['records_per_cpu_s_body'], vstore['records_per_cpu_s'])}x (c) per CPU-s"
            )
    for name, r in results.items():
        if r["synthetic"] or not r["runs"]:
            continue
        run = r["runs"][0]
        notes.append(
            f"{name}: worker start-up (process wall - body) loader {run['loader_alone']['startup_s']:.1f} s, "
            f"sink {run['sink_alone']['startup_s']:.1f} s; end to end from loader `started` to sink `finished` "
            f"{r['streamforge']['e2e_rate_body']:,.0f}/s, from launching both processes to the last exit "
            f"{r['streamforge']['e2e_rate_wall']:,.0f}/s"
        )
    trades = results.get("trades_day")
    if trades:
        orig, sink = trades["baseline_original"], trades["runs"][0]["sink_alone"]
        notes.append(
            f"ArangoDB test-server CPU per 1k docs (trades): (a) one insert per document "
            f"{orig['arango_server_cpu_ms_per_1k_docs']:,.0f} ms, StreamForge batches "
            f"{sink['arango_server_cpu_ms_per_1k_docs']:,.0f} ms — (a) is bound by per-request cost, which is "
            "higher in this Python test server than in a real ArangoDB, so SF/(a) is larger here than it would be "
            "against a real server"
        )
    notes.append(
        f"(a) is capped at {meta['original_cap']:,} messages per dataset and its rate extrapolated; its "
        "end-to-end figure is min(produce, consume), as if both ran concurrently; (b) end to end likewise. "
        "StreamForge end to end is measured with loader and sink running together."
    )
    notes.append(
        "StreamForge rates use body time (the `finished` event's duration_s: after interpreter start, "
        f"connections and control listener), {repeats}; "
        "the loader's includes downloading and parsing the daily archives from the replay server."
    )
    notes.append(
        f"other processes on this machine (not this benchmark) used {meta['foreign_cpu_share_median']:.0%} of "
        f"the CPU during the median worker run (max {meta['foreign_cpu_share_max']:.0%}); load average "
        f"{meta['loadavg_start'][0] if meta['loadavg_start'] else '?'} at start: compare runs at similar foreign load"
    )
    notes.append(
        f"{SMALL_MARK.strip()} fewer than {SMALL:,} records: fixed costs dominate every column; the "
        "synthetic rows are the steady state"
    )
    return "\n".join(f"  * {n}" for n in notes)


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench workers",
        description="Throughput of the StreamForge loader → Kafka → sink, against the original pattern and raw Kafka.",
    )
    parser.add_argument(
        "--trades",
        type=int,
        default=None,
        metavar="N",
        help=f"records of the synthetic trades topic for the sink (default {DEFAULT_TRADES:,}; "
        f"--quick {QUICK_TRADES:,})",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sets, no repeats (a smoke run, ~2 min)")
    parser.add_argument(
        "--sink-only", action="store_true", help="only the synthetic trades topic: sink vs (b) and (c), ~1.5 min"
    )
    parser.add_argument("--repeats", type=int, default=None, help="repeats of each real window (default 3; --quick 1)")
    parser.add_argument(
        "--output", type=Path, default=None, help="JSON path (default bench/results/workers-<time>.json)"
    )
    args = parser.parse_args(argv)
    trades = args.trades or (QUICK_TRADES if args.quick else DEFAULT_TRADES)
    repeats = args.repeats or (1 if args.quick else 3)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_dir = RESULTS_DIR / f"workers-{stamp}-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    output = args.output or RESULTS_DIR / f"workers-{stamp}.json"
    began = time.monotonic()
    load_start = _loadavg()

    with Stack(log_dir) as stack:
        bench = Bench(stack, log_dir, quick=args.quick, trades=trades, repeats=repeats)
        bench.say(f"stack up: {stack.timings}")
        warmup = bench.warm_up()
        if not args.sink_only:
            for window in REAL_WINDOWS:
                bench.real_window(*window)
            bench.synthetic_set(
                "candles_1m_repeated", "candles", bench.candles_synth, "candles_1m_3d", measure_arango=False
            )
        bench.synthetic_set("trades_repeated", "trades", trades, "trades_day", measure_arango=True)
        meta = {
            "when": stamp,
            "quick": args.quick,
            "wall_s": round(time.monotonic() - began, 1),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "confluent_kafka": confluent_kafka.version()[0],
            "librdkafka": confluent_kafka.libversion()[0],
            "kafka_broker": stack.kafka.version,
            "kafka_jvm_opts": stack.jvm_opts,
            "stack_start": stack.timings,
            "original_cap": bench.original_cap,
            "warm_up": warmup,
            "loadavg_start": load_start,
            "loadavg_end": _loadavg(),
            "foreign_cpu_share_median": round(statistics.median(bench.foreign_loads), 3),
            "foreign_cpu_share_max": round(max(bench.foreign_loads), 3),
            "repeats": repeats,
            "partitions": 1,
            "sink_batch_size": SinkSettings.model_fields["arango_batch_size"].default,
            "arango": "plugins/streamforge/stack/arango_server (in-memory test server, own process), "
            "not a real ArangoDB",
        }
        results = bench.results

    rows = table_rows(results)
    report = {"meta": meta, "table": rows, "datasets": results}
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(render_table(rows))
    print()
    print(render_notes(results, meta))
    print(
        f"\n  results: {output.relative_to(Path.cwd()) if output.is_relative_to(Path.cwd()) else output}"
        f" (logs: {log_dir.name}/); total {meta['wall_s']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
