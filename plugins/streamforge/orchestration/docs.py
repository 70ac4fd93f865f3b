"""The `doc_md` of a StreamForge DAG: what one run does, shown on the DAG's page."""

from __future__ import annotations

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
