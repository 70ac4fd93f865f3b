"""Alerts under the scheduler, tasks running concurrently: each names the task whose failure made
the run fail and links to its log; one message per target (Slack webhook, JSON webhook) per run;
the deadline alert carries the queue id and the task states.

A stack of its own (same Kafka, ArangoDB, Binance replay and PostgreSQL as the session's), whose
catalog sends alerts to a recording receiver and holds one DAG per failure:

* BTCUSDT 1m: the sink is `dummy-service --fail-after 1` (the sensor reads its `error` event
  seconds before `run_sink` itself is failed);
* ETHUSDT 1m: the loader is `dummy-service --fail-after 1`;
* BTCUSDT 1h: replication factor 3 on a one-broker cluster, which the broker refuses in `create_topic`
  (a day the replay holds 1h candles for: an earlier one is before the listing and creates no topic);
* ETHUSDT 1h: dummy-service as loader *and* sink, each running 150 s, longer than the 2-minute run
  deadline (long enough after the run is queued that `plan` has pushed the queue id even on a busy machine).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from streamforge.stack import local as sf
from streamforge.stack.local import ArangoTarget, LocalStack
from tests.dags.e2e import WebhookReceiver

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

FAILING_SINK = "streamforge__btcusdt__api_candles_1m"
FAILING_LOADER = "streamforge__ethusdt__api_candles_1m"
FAILING_TOPIC = "streamforge__btcusdt__api_candles_1h"
DUMMY_BOTH = "streamforge__ethusdt__api_candles_1h"
DAY = {"start": "2020-01-02", "end": "2020-01-03"}
LISTED_1H_DAY = {"start": "2022-09-07", "end": "2022-09-08"}  # BTCUSDT 1h in the replay starts there
RUN_TIMEOUT = 600.0
QUIET_AFTER_RUN = 8.0  # a second alert for the same run would have arrived by then

FAIL = {"component": "dummy-service", "args": ["--fail-after", "1"]}
DEADLINE_MINUTES = 2
OUTLAST_DEADLINE = {"component": "dummy-service", "args": ["--exit-after", str(DEADLINE_MINUTES * 60 + 30)]}


def _pipeline(name: str, symbol: str, data_type: str, **overrides: Any) -> dict[str, Any]:
    return {"name": name, "symbols": [symbol], "types": [data_type], "overrides": overrides}


CATALOG = {
    "retries": 0,  # verify of the dummy run fails at once instead of after two retries
    "alerts": {
        "targets": [
            {"kind": "slack_webhook", "conn_id": "streamforge_slack"},
            {"kind": "webhook", "conn_id": "streamforge_alert_webhook"},
        ],
        "run_deadline_minutes": None,
    },
    "pipelines": [
        _pipeline("failing-sink", "BTCUSDT", "api_candles_1m", workers={"sink": FAIL}),
        _pipeline("failing-loader", "ETHUSDT", "api_candles_1m", workers={"loader": FAIL}),
        _pipeline("failing-topic", "BTCUSDT", "api_candles_1h", topics={"data_replication_factor": 3}),
        _pipeline(
            "dummy-both",
            "ETHUSDT",
            "api_candles_1h",
            workers={"loader": OUTLAST_DEADLINE, "sink": OUTLAST_DEADLINE},
            alerts={"run_deadline_minutes": DEADLINE_MINUTES},
        ),
    ],
}


@dataclass
class AlertRuns:
    stack: LocalStack
    receiver: WebhookReceiver
    runs: dict[str, str] = field(default_factory=dict)  # dag_id -> dag_run_id

    def alerts(self, dag_id: str, kind: str = "run_failed") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(JSON webhook bodies, Slack bodies) of this DAG's run."""
        run_id = self.runs[dag_id]
        bodies = list(self.receiver.bodies)
        posted = [b for b in bodies if b["_path"] == "/alerts" and b["run_id"] == run_id and b["kind"] == kind]
        title = "FAILED" if kind == "run_failed" else "past its deadline"
        slack = [b for b in bodies if b["_path"] == "/slack" and f"run: {run_id}\n" in b["text"] and title in b["text"]]
        return posted, slack


def _connections(receiver: WebhookReceiver) -> dict[str, str]:
    port = int(receiver.url.split(":")[2].split("/")[0])
    webhook = {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http",
               "extra": {"endpoint": "/alerts"}}  # fmt: skip
    slack = {"conn_type": "slackwebhook", "password": receiver.url.replace("/alerts", "/slack")}
    return {
        "AIRFLOW_CONN_STREAMFORGE_ALERT_WEBHOOK": json.dumps(webhook),
        "AIRFLOW_CONN_STREAMFORGE_SLACK": json.dumps(slack),
    }


@pytest.fixture(scope="module")
def alert_runs(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_broker: Any,
    arango_endpoint: Any,
    binance_replay: Any,
    postgres: Any,
) -> Iterator[AlertRuns]:
    arango = ArangoTarget(arango_endpoint.url, arango_endpoint.username, arango_endpoint.password,
                          database=f"sf_alerts_{secrets.token_hex(4)}")  # fmt: skip
    with WebhookReceiver() as receiver:
        stack = LocalStack(kafka=kafka_broker, arango=arango, binance=binance_replay, postgres=postgres,
                           catalog_overrides=CATALOG, extra_env=_connections(receiver),
                           home=tmp_path_factory.mktemp("alert-stack"))  # fmt: skip
        stack.start()
        try:
            result = AlertRuns(stack, receiver)
            assert stack.airflow is not None
            with stack.client() as api:
                for dag_id in (FAILING_SINK, FAILING_LOADER, FAILING_TOPIC, DUMMY_BOTH):
                    stack.airflow.wait_for_dag(dag_id)
                    sf.unpause(api, dag_id)
                # All four at once: their tasks run side by side under the scheduler.
                for dag_id in (DUMMY_BOTH, FAILING_SINK, FAILING_LOADER, FAILING_TOPIC):
                    day = LISTED_1H_DAY if dag_id == FAILING_TOPIC else DAY
                    result.runs[dag_id] = sf.trigger(api, dag_id, day)["dag_run_id"]
            yield result
        finally:
            stack.stop()
            arango.client().db("_system", arango.username, arango.password).delete_database(
                arango.database, ignore_missing=True
            )


def _finished(runs: AlertRuns, api: httpx.Client, dag_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ended run and its task instances by task id, once its alert traffic is over."""
    run = sf.wait_for_run(api, dag_id, runs.runs[dag_id], timeout=RUN_TIMEOUT)
    time.sleep(QUIET_AFTER_RUN)
    body = sf.check(api.get(f"/api/v2/dags/{dag_id}/dagRuns/{runs.runs[dag_id]}/taskInstances"))
    return run, {ti["task_id"]: ti for ti in body["task_instances"]}


def _at(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def _timing(alert: dict[str, Any], tis: dict[str, dict[str, Any]], task: str) -> str:
    """When the alert arrived, from the first task failure of the run (the root failure is no later than that
    or than the named task's end), and where the time went: the watcher's queueing, start and end."""
    failed = {t: _at(ti["end_date"]) for t, ti in tis.items() if ti["state"] == "failed" and t != "watcher"}
    first = min(failed, key=lambda t: failed[t] or float("inf"))
    t0 = min(v for v in (failed[first], _at(tis[task]["end_date"])) if v is not None)
    watcher = tis["watcher"]
    steps = {"watcher queued": _at(watcher.get("queued_when")), "started": _at(watcher["start_date"]),
             "ended": _at(watcher["end_date"]), "alert received": alert["_at"]}  # fmt: skip
    marks = ", ".join(f"{name} {at - t0:+.1f}s" for name, at in steps.items() if at is not None)
    return f"first failure {first}, {task} ended {(_at(tis[task]['end_date']) or t0) - t0:+.1f}s; {marks}"


def _one_alert_each(runs: AlertRuns, dag_id: str) -> dict[str, Any]:
    posted, slack = runs.alerts(dag_id)
    assert len(posted) == 1, posted
    assert len(slack) == 1, slack
    assert slack[0]["text"] == posted[0]["text"]
    return posted[0]


@pytest.mark.parametrize(("dag_id", "task"), [(FAILING_SINK, "run_sink"), (FAILING_LOADER, "run_loader")])
def test_a_failing_worker_is_named_with_a_link_to_its_log(
    alert_runs: AlertRuns, airflow_timer: Any, dag_id: str, task: str
) -> None:
    with alert_runs.stack.client() as api:
        run, tis = _finished(alert_runs, api, dag_id)
        plan = sf.xcom(api, dag_id, run["dag_run_id"], "plan")
    assert run["state"] == "failed" and tis[task]["state"] == "failed", {t: ti["state"] for t, ti in tis.items()}
    alert = _one_alert_each(alert_runs, dag_id)
    assert alert["task"] == task, alert["text"]
    assert alert["log_url"].endswith(f"/runs/{quote(run['dag_run_id'])}/tasks/{task}")
    assert alert["queue_id"] == plan["queue_id"]
    assert plan["producers"][task.removeprefix("run_")] in alert["error"]
    assert f"failed task: {task}" in alert["text"] and "task states: plan=success" in alert["text"]
    timing = _timing(alert, tis, task)
    airflow_timer(f"alert naming {task}: {timing}")
    print(f"{dag_id}: alert naming {task}: {timing}")


def test_a_refused_topic_names_create_topic(alert_runs: AlertRuns) -> None:
    with alert_runs.stack.client() as api:
        run, tis = _finished(alert_runs, api, FAILING_TOPIC)
    assert run["state"] == "failed" and tis["create_topic"]["state"] == "failed"
    alert = _one_alert_each(alert_runs, FAILING_TOPIC)
    assert (alert["task"], alert["cause"]) == ("create_topic", "setup task")
    assert alert["log_url"].endswith("/tasks/create_topic")
    assert "replication" in alert["error"].lower(), alert["error"]
    print(f"{FAILING_TOPIC}: alert naming create_topic: {_timing(alert, tis, 'create_topic')}")


def test_dummy_service_in_both_roles_decides_normally_and_the_deadline_alert_has_the_queue_id(
    alert_runs: AlertRuns,
) -> None:
    with alert_runs.stack.client() as api:
        run, tis = _finished(alert_runs, api, DUMMY_BOTH)
        plan = sf.xcom(api, DUMMY_BOTH, run["dag_run_id"], "plan")
        outcome = sf.xcom(api, DUMMY_BOTH, run["dag_run_id"], "await_outcome")
    loader, sink = plan["producers"]["loader"], plan["producers"]["sink"]
    assert loader != sink
    # The sensor told the two dummies apart and decided: both finished, counts equal.
    assert outcome["success"] is True and outcome["producers"] == {loader: "finished", sink: "finished"}
    assert tis["run_loader"]["state"] == tis["run_sink"]["state"] == "success"

    posted, slack = alert_runs.alerts(DUMMY_BOTH, "deadline_missed")
    assert len(posted) == 1 and len(slack) == 1, (posted, slack)
    deadline = posted[0]
    assert deadline["queue_id"] == plan["queue_id"], deadline["text"]
    assert deadline["task_states"]["plan"] == "success"
    # States at the deadline, not at the end: the loader runs longer than the deadline after it started
    # (with the local runner a running worker's task waits in reschedule mode between polls).
    unfinished = ("scheduled", "queued", "running", "up_for_reschedule")
    assert deadline["task_states"]["run_loader"] in unfinished, deadline["text"]
    assert f"queue_id: {plan['queue_id']}" in slack[0]["text"] and "task states: plan=success" in slack[0]["text"]
    late = deadline["_at"] - (_at(run["queued_at"]) or 0) - DEADLINE_MINUTES * 60
    print(f"{DUMMY_BOTH}: deadline alert {late:+.1f}s after the deadline (queued_at + {DEADLINE_MINUTES} min)")
    # dummy-service writes no documents, so `verify` fails the run, and says so.
    if run["state"] == "failed":
        assert _one_alert_each(alert_runs, DUMMY_BOTH)["task"] == "verify"


def test_no_other_alerts(alert_runs: AlertRuns) -> None:
    """Every message the receiver got belongs to one of the runs above, and none is a duplicate."""
    with alert_runs.stack.client() as api:
        for dag_id in alert_runs.runs:
            _finished(alert_runs, api, dag_id)
    keys = [(b["_path"], b.get("run_id") or b["text"].split("run: ", 1)[1].split("\n", 1)[0],
             b.get("kind") or b["text"].split("\n", 1)[0]) for b in alert_runs.receiver.bodies]  # fmt: skip
    assert len(keys) == len(set(keys)), keys
    assert {k[1] for k in keys} <= set(alert_runs.runs.values())
