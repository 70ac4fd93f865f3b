"""End to end with the local runner: dag.test() subprocesses against real Kafka, the ArangoDB
test server and the Binance replay server (tests/dags/e2e.py has the harness)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.dags.e2e import DagTest, WebhookReceiver, base_env, connections_env, e2e_catalog, migrate, new_home

DAG_1M = "streamforge__btcusdt__api_candles_1m"
DAG_1H = "streamforge__btcusdt__api_candles_1h"

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="session")
def airflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrate(tmp_path_factory.mktemp("airflow-template"))


@pytest.fixture(scope="session")
def webhook() -> Any:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def services(kafka_broker, arango_endpoint, arango_db, binance_replay, webhook) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {
        "kafka": kafka_broker,
        "arango": arango_endpoint,
        "db": arango_db,
        "binance": binance_replay,
        "webhook": webhook,
    }


def dag_test(
    tmp_path: Path,
    template: Path,
    catalog: Path,
    dag_id: str,
    day: str,
    env: dict[str, str],
    conf: dict[str, Any] | None = None,
    timeout: float = 300,
) -> DagTest:
    workdir = tmp_path / f"{dag_id}-{day}-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True)
    home = new_home(template, workdir)
    full_env = (
        base_env(home)
        | env
        | {"STREAMFORGE_CATALOG": str(catalog), "STREAMFORGE_LOCAL_STATE_DIR": str(workdir / "workers")}
    )
    return DagTest(workdir=workdir, env=full_env, dag_id=dag_id, logical_date=day, conf=conf, timeout=timeout)


def service_env(services: dict[str, Any], protocol: str = "PLAINTEXT") -> dict[str, str]:
    kafka, arango, db, webhook = (services[k] for k in ("kafka", "arango", "db", "webhook"))
    return connections_env(kafka, arango, db.name, webhook.url, protocol) | {
        "STREAMFORGE_BINANCE_API_URL": services["binance"].api_url,
        "STREAMFORGE_BINANCE_ARCHIVE_URL": services["binance"].archive_url,
    }


def alerts_for(webhook: WebhookReceiver, run_id: str, wait: float = 5) -> list[dict[str, Any]]:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        found = [b for b in webhook.bodies if b.get("run_id") == run_id]
        if found:
            return found
        time.sleep(0.1)
    return []


def test_plan_refuses_a_bad_window_and_alerts(tmp_path: Path, airflow_db_template: Path, webhook: Any) -> None:
    """Cross-field rules fail `plan` before anything is created; the run is red and alerted."""
    catalog = e2e_catalog(tmp_path / "catalog.yaml", ["api_candles_1m"])
    env = {
        f"AIRFLOW_CONN_{'streamforge_alert_webhook'.upper()}": json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": int(webhook.url.split(":")[2].split("/")[0]),
                "schema": "http",
                "extra": {"endpoint": "/alerts"},
            }
        )
    }
    run = dag_test(
        tmp_path,
        airflow_db_template,
        catalog,
        DAG_1M,
        "2024-08-01",
        env,
        conf={"start": "2024-08-03", "end": "2024-08-02"},
        timeout=240,
    )
    result = run.run()
    assert result["state"] == "failed", run.log_tail()
    states = result["states"]
    assert states["plan"] == "failed" and states["watcher"] == "failed"
    assert states["create_topic"] == "upstream_failed" and states.get("delete_topic") in ("skipped", "upstream_failed")
    assert "must be after start" in result["xcoms"]["plan.error"]
    (alert,) = alerts_for(webhook, result["run_id"])
    assert alert["task"] == "plan" and alert["queue_id"] is None
    assert "set `end` later than `start`" in alert["error"]
    print(f"plan-failure run: {run.seconds:.1f}s")


def _topics(kafka_broker: Any) -> set[str]:
    return set(kafka_broker.admin().list_topics(timeout=10).topics)


def _commands(kafka_broker: Any, queue_id: str) -> list[dict[str, Any]]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        kafka_broker.client_config(**{"group_id": f"t-{uuid.uuid4().hex}", "enable_partition_eof": True})
    )
    try:
        parts = consumer.list_topics("queue-control", timeout=10).topics["queue-control"].partitions
        consumer.assign([TopicPartition("queue-control", p, 0) for p in parts])
        found, ends = [], set()
        deadline = time.monotonic() + 20
        while len(ends) < len(parts) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                ends.add(message.partition())
                continue
            if message.key() == queue_id.encode():
                found.append(json.loads(message.value()))
        return found
    finally:
        consumer.close()


@pytest.mark.kafka
def test_a_day_of_1m_candles(tmp_path: Path, airflow_db_template: Path, services: dict[str, Any]) -> None:
    catalog = e2e_catalog(tmp_path / "catalog.yaml", ["api_candles_1m"])
    run = dag_test(tmp_path, airflow_db_template, catalog, DAG_1M, "2020-01-01", service_env(services))
    result = run.run()
    assert result["state"] == "success", run.log_tail(200)
    states = result["states"]
    assert {
        states[t] for t in ("plan", "create_topic", "run_loader", "run_sink", "await_outcome", "verify", "delete_topic")
    } == {"success"}
    assert states["send_stop"] == "skipped" and states["watcher"] == "skipped"
    plan = result["xcoms"]["plan.return_value"]
    assert plan["time_range"] == "2020-01-01T00:00:00Z/2020-01-02T00:00:00Z"
    assert result["xcoms"]["await_outcome.return_value"]["sink_records"] == 1440
    report = result["xcoms"]["verify.return_value"]
    assert (report["count"], report["expected_count"], report["problems"]) == (1440, 1440, [])
    assert report["first"] == 1577836800000 and report["last"] == 1577836800000 + 1439 * 60_000
    assert services["db"].collection("btcusdt_api_candles_1m_2020_01_01").count() == 1440
    assert plan["data_topic"] not in _topics(services["kafka"])
    assert "verify btcusdt_api_candles_1m_2020_01_01" in run.log() and "-> OK" in run.log()
    print(f"1m day: {run.seconds:.1f}s")


@pytest.mark.kafka
def test_a_day_over_sasl_ssl_scram_sha_512(tmp_path: Path, airflow_db_template: Path, services: dict[str, Any]) -> None:
    """The whole run (topic admin, workers, sensor) through the SASL_SSL listener with CA verification."""
    catalog = e2e_catalog(tmp_path / "catalog.yaml", ["api_candles_1m"])
    env = service_env(services, "SASL_SSL")
    assert json.loads(env["AIRFLOW_CONN_STREAMFORGE_KAFKA"])["extra"]["security.protocol"] == "SASL_SSL"
    run = dag_test(tmp_path, airflow_db_template, catalog, DAG_1M, "2020-01-03", env)
    result = run.run()
    assert result["state"] == "success", run.log_tail(200)
    assert result["xcoms"]["verify.return_value"]["count"] == 1440
    assert services["kafka"].scram_password not in run.log()


@pytest.mark.kafka
@pytest.mark.parametrize("role", ["sink", "loader"])
def test_a_failing_worker_fails_the_run_stops_cleans_up_and_alerts(
    tmp_path: Path, airflow_db_template: Path, services: dict[str, Any], role: str
) -> None:
    catalog = e2e_catalog(
        tmp_path / "catalog.yaml",
        ["api_candles_1m"],
        workers={role: {"component": "dummy-service", "args": ["--fail-after", "1"]}},
    )
    run = dag_test(tmp_path, airflow_db_template, catalog, DAG_1M, "2020-01-02", service_env(services))
    result = run.run()
    assert result["state"] == "failed", run.log_tail(200)
    states = result["states"]
    failing = f"run_{role}"
    assert states[failing] == "failed" and states["await_outcome"] == "failed"
    assert states["verify"] == "upstream_failed"
    assert states["send_stop"] == "success" and states["delete_topic"] == "success"
    assert states["watcher"] == "failed"
    plan = result["xcoms"]["plan.return_value"]
    outcome = result["xcoms"]["await_outcome.outcome"]
    assert outcome["reason"] == "error" and plan["producers"][role] in outcome["message"]
    assert "exit 1" in result["xcoms"][f"{failing}.error"]

    stops = [c for c in _commands(services["kafka"], plan["queue_id"]) if c["command"] == "stop"]
    assert len(stops) == 1 and stops[0]["target"] is None
    # send_stop fires on the first failure: the sensor's verdict or the failed worker task, whichever
    # Airflow finishes first; both name the cause.
    assert "reported an error" in stops[0]["reason"] or f"{failing} failed" in stops[0]["reason"]
    assert plan["data_topic"] not in _topics(services["kafka"])

    (alert,) = alerts_for(services["webhook"], result["run_id"])
    assert alert["event"] == "streamforge.run_failed"
    assert alert["queue_id"] == plan["queue_id"] and alert["task"] == failing
    # The error is the named task's own (exit code) or, if the sensor's verdict came first, the event.
    assert "dummy-service" in alert["error"] and alert["dag_id"] == DAG_1M
    assert "reported an error" in alert["error"] or "exit 1" in alert["error"]
    assert alert["log_url"].endswith(f"/tasks/{failing}")
    assert plan["queue_id"] in alert["text"]
    print(f"failing {role}: {run.seconds:.1f}s")


@pytest.mark.kafka
def test_concurrent_runs_decide_on_their_own_events(
    tmp_path: Path, airflow_db_template: Path, services: dict[str, Any]
) -> None:
    catalog = e2e_catalog(tmp_path / "catalog.yaml", ["api_candles_1h"])
    days = [f"2024-08-{d:02d}" for d in range(1, 11)]
    runs = [
        dag_test(tmp_path, airflow_db_template, catalog, DAG_1H, day, service_env(services), timeout=600)
        for day in days
    ]
    began = time.monotonic()
    for run in runs:
        run.start()
    results = [run.wait() for run in runs]
    elapsed = time.monotonic() - began
    queue_ids = set()
    for day, run, result in zip(days, runs, results, strict=True):
        assert result["state"] == "success", f"{day}\n{run.log_tail(150)}"
        plan = result["xcoms"]["plan.return_value"]
        assert plan["collection"] == f"btcusdt_api_candles_1h_{day.replace('-', '_')}"
        outcome = result["xcoms"]["await_outcome.return_value"]
        assert outcome["queue_id"] == plan["queue_id"] and outcome["sink_records"] == 24
        assert set(outcome["producers"]) == set(plan["producers"].values())  # only its own workers' events
        assert result["xcoms"]["verify.return_value"]["count"] == 24
        queue_ids.add(plan["queue_id"])
    assert len(queue_ids) == 10
    print(f"10 concurrent runs: {elapsed:.1f}s wall, slowest {max(r.seconds for r in runs):.1f}s")


@pytest.mark.kafka
def test_a_cleared_run_replans_and_ignores_the_earlier_attempt(
    tmp_path: Path, airflow_db_template: Path, services: dict[str, Any]
) -> None:
    """Attempt 1 fails (its sink reports an error); the run is cleared from `plan` (with
    downstream, as the UI does) after the sink is fixed, and re-runs in place: `plan` runs with
    try 2, so a new h6 / queue / topic, and the outcome ignores attempt 1's `error` event."""
    failing = e2e_catalog(
        tmp_path / "failing.yaml",
        ["api_candles_1m"],
        workers={"sink": {"component": "dummy-service", "args": ["--fail-after", "1"]}},
    )
    fixed = e2e_catalog(tmp_path / "fixed.yaml", ["api_candles_1m"])
    run = dag_test(tmp_path, airflow_db_template, failing, DAG_1M, "2020-01-03", service_env(services), timeout=400)
    run.extra_args = ["--clear", "plan", "--rerun-catalog", str(fixed)]
    result = run.run()
    first = result["first"]
    assert first["state"] == "failed", run.log_tail(200)
    assert first["xcoms"]["await_outcome.outcome"]["reason"] == "error"
    old = first["xcoms"]["plan.return_value"]
    assert set(result["cleared"]) >= {
        "plan",
        "create_topic",
        "run_loader",
        "run_sink",
        "await_outcome",
        "verify",
        "send_stop",
        "delete_topic",
        "watcher",
    }
    assert result["state"] == "success", run.log_tail(200)
    new = result["xcoms"]["plan.return_value"]
    assert (old["attempt"], new["attempt"]) == (1, 2) and result["tries"]["plan"] == 2
    assert new["h6"] != old["h6"] and new["queue_id"] != old["queue_id"]
    assert new["collection"] == old["collection"] == "btcusdt_api_candles_1m_2020_01_03"
    outcome = result["xcoms"]["await_outcome.return_value"]
    assert outcome["queue_id"] == new["queue_id"] and outcome["sink_records"] == 1440
    assert result["xcoms"]["verify.return_value"]["count"] == 1440
    assert {old["data_topic"], new["data_topic"]}.isdisjoint(_topics(services["kafka"]))
    print(f"fail + clear + re-run: {run.seconds:.1f}s")
