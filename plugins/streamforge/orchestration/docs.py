"""The `doc_md` of a StreamForge DAG: what one run does, shown on the DAG's page."""

from __future__ import annotations

from streamforge.orchestration import task_ids
from streamforge.orchestration.catalog import DagSpec


def doc_md(spec: DagSpec) -> str:
    s = spec.settings
    return f"""\
### {spec.symbol} {spec.data_type} → ArangoDB

Pipeline `{spec.pipeline}`{": " + spec.description if spec.description else ""}

One run loads one time window of Binance **{spec.symbol}** `{spec.data_type}` through a Kafka
topic of its own into ArangoDB (collection layout `{s.collection_layout.value}`), with the
`{s.runner.value}` runner.

* **Window**: params `start`/`end` (ISO, UTC, end exclusive), else the run's day: a scheduled
  or backfill run loads its data interval; a manual run with logical date 2024-08-01 loads
  2024-08-01 (Airflow alone would give a manual run the day *before* its logical date); a
  manual run triggered "now" loads the last complete day. At most {s.run.max_timeout_minutes} min
  of timeout; windows larger than the type allows, in the future or with end ≤ start are refused
  by `plan` before anything is created.
* **plan** names the attempt (queue_id `wf-…-<h6>`, topic `<queue_id>-data`, collection);
  **create_topic** / **delete_topic** (setup/teardown) own the topic;
  **run_loader** and **run_sink** run the workers; **await_outcome** reads `{s.topics.events}`
  for this queue: success when the sink's `finished` count equals the loader's; **verify**
  checks the collection (count, first/last, no gaps); **send_stop** stops surviving workers
  when anything failed; **watcher** fails the run and alerts.
* **Re-run**: clear the DAG run (or `plan` with downstream): `plan` names a new attempt and
  both workers and the sensor run again. Clearing a single task also re-plans (`plan` is a
  setup), and a worker whose siblings were not cleared refuses to start, saying so.
* **History**: `airflow backfill create --dag-id {spec.dag_id} --from-date … --to-date …`
  (throttled by max_active_runs={s.max_active_runs}).
"""


def display_name(spec: DagSpec) -> str:
    """What the UI shows instead of the DAG id: `BTCUSDT · candles 1m`, `ETHUSDT · trades`."""
    kind = spec.type
    return f"{spec.symbol} · {kind.kind.value}" + (f" {kind.interval.code}" if kind.interval else "")


# The `doc_md` of each task (the task's "Task Instance Details" page in the UI).
TASK_DOCS: dict[str, str] = {
    task_ids.PLAN: (
        "Names this attempt of the run from the run id, the try number and the params: the window, "
        "queue id `wf-…-<h6>`, data topic `<queue_id>-data`, the collection, the workers' env and the "
        "deadline. Refuses bad windows (end ≤ start, in the future, larger than the type allows) "
        "before anything is created. A setup task: clearing any task re-plans."
    ),
    task_ids.CREATE_TOPIC: (
        "Creates this attempt's Kafka data topic (param `partitions`; the broker's default "
        "replication unless the catalog sets one) and waits for its leaders."
    ),
    task_ids.RUN_LOADER: (
        "Runs the loader worker (Binance REST or the data.binance.vision archive → the data topic), "
        "as a Kubernetes pod or a local child process, until it reports `finished` or fails."
    ),
    task_ids.RUN_SINK: (
        "Runs the sink worker (data topic → ArangoDB, idempotent upserts by `_key`) until it "
        "reports `finished` or fails."
    ),
    task_ids.AWAIT_OUTCOME: (
        "Reads `queue-events` for this queue id only: succeeds when the sink has written what the "
        "loader produced, fails on a worker error or at the run's deadline."
    ),
    task_ids.VERIFY: "Checks the collection: the window's document count, first and last key, no gaps.",
    task_ids.SEND_STOP: "When anything failed: sends `stop` on `queue-control` so surviving workers end.",
    task_ids.DELETE_TOPIC: "Deletes the data topic (teardown: runs whatever happened before).",
    task_ids.WATCHER: "Fails the run and sends one alert when any task failed.",
}
