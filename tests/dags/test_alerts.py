"""Alerts through the real notifiers (JSON webhook, the Slack provider's webhook notifier) and the
deadline callback, delivered to a local HTTP receiver. The full failure path (watcher -> alert)
runs in test_e2e_local.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from streamforge.orchestration import alerts
from streamforge.orchestration.outcome import Outcome, Reason
from streamforge.orchestration.root_cause import root_cause
from tests.dags.e2e import WebhookReceiver

ALERT = alerts.Alert(
    dag_id="streamforge__btcusdt__api_candles_1m",
    run_id="manual__1",
    task="run_sink",
    cause="its sink reported `error` (arango-candles__abc123)",
    failed_tasks=["await_outcome"],
    task_states={"plan": "success", "run_sink": "running", "await_outcome": "failed", "verify": None},
    queue_id="wf-btcusdt-api_candles_1m-20240801-abc123",
    error="arango-candles (arango-candles__abc123) reported an error: disk full",
    log_url="http://airflow/dags/d/runs/manual__1/tasks/run_sink",
)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


def _wait(receiver: WebhookReceiver, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while len(receiver.bodies) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return receiver.bodies


class FakeTI:
    dag_id, run_id, task_id = ALERT.dag_id, ALERT.run_id, "watcher"

    def __init__(self, pushed: dict[str, Any] | None) -> None:
        self.pushed = pushed

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        return self.pushed if key == alerts.ALERT_XCOM_KEY else None


def _http_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, url: str) -> None:
    host, rest = url.removeprefix("http://").split("/", 1)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps(
            {
                "conn_type": "http",
                "host": host.split(":")[0],
                "port": int(host.split(":")[1]),
                "schema": "http",
                "password": "s3cret",
                "extra": {"endpoint": rest},
            }
        ),
    )


def test_alert_text_carries_what_an_operator_needs() -> None:
    text = ALERT.text
    for part in (ALERT.dag_id, ALERT.run_id, ALERT.queue_id, "disk full", ALERT.log_url):
        assert part in text  # type: ignore[operator]
    assert "failed task: run_sink (its sink reported `error` (arango-candles__abc123))" in text
    assert "task states: plan=success, run_sink=running, await_outcome=failed, verify=none" in text
    assert ALERT.payload()["event"] == "streamforge.run_failed"


def test_a_target_without_its_connection_is_skipped_with_one_warning(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SF_NOT_DEFINED", raising=False)
    targets = [
        alerts.SlackWebhookTarget(kind="slack_webhook", conn_id="sf_not_defined"),
        alerts.WebhookTarget(kind="webhook", conn_id="sf_not_defined"),
    ]
    for notifier in alerts.notifiers(targets):
        with caplog.at_level("WARNING"):
            caplog.clear()
            notifier.notify({"ti": FakeTI(ALERT.model_dump(mode="json"))})  # does not raise
        warnings = [r for r in caplog.records if r.levelname == "WARNING" and "sf_not_defined" in r.getMessage()]
        assert len(warnings) == 1 and "not defined" in warnings[0].getMessage()
    context = {"dag_run": {"dag_id": ALERT.dag_id, "dag_run_id": "r1"}, "deadline": {}}
    with caplog.at_level("WARNING"):
        caplog.clear()
        asyncio.run(alerts.deadline_missed(context, targets=[t.model_dump() for t in targets], minutes=1))
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    assert len([r for r in caplog.records if "sf_not_defined" in r.getMessage()]) == 2
    assert receiver.bodies == []


def test_json_webhook_notifier(receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    _http_conn(monkeypatch, "sf_alert_test", receiver.url)
    notifier = alerts.JsonWebhookNotifier(conn_id="sf_alert_test")
    notifier.notify({"ti": FakeTI(ALERT.model_dump(mode="json"))})
    (body,) = _wait(receiver)
    assert body["_path"] == "/alerts"
    assert body["queue_id"] == ALERT.queue_id and "disk full" in body["error"] and body["task"] == "run_sink"
    assert body["text"] == ALERT.text


def test_alert_without_the_watchers_xcom_quotes_the_exception() -> None:
    alert = alerts.alert_from_context({"ti": FakeTI(None), "exception": RuntimeError("boom")})
    assert (alert.task, alert.error) == ("watcher", "boom")
    assert alert.log_url and alert.log_url.endswith("/tasks/watcher")


def test_slack_webhook_notifier(receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Slack Incoming Webhook connection; the webhook URL (here: the local receiver) as password.
    monkeypatch.setenv(
        "AIRFLOW_CONN_SF_SLACK_TEST",
        json.dumps({"conn_type": "slackwebhook", "password": receiver.url.replace("/alerts", "/slack")}),
    )
    (notifier,) = alerts.notifiers([alerts.SlackWebhookTarget(kind="slack_webhook", conn_id="sf_slack_test")])
    notifier.notify({"ti": FakeTI(ALERT.model_dump(mode="json"))})
    (body,) = _wait(receiver)
    assert body["_path"] == "/slack" and body["text"] == ALERT.text


def test_deadline_callback(receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    _http_conn(monkeypatch, "sf_alert_test", receiver.url)
    context = {
        "dag_run": {"dag_id": ALERT.dag_id, "dag_run_id": "scheduled__2024-08-01"},
        "deadline": {"id": "d1", "deadline_time": "2024-08-02T04:00:00+00:00"},
    }
    asyncio.run(
        alerts.deadline_missed(
            context, targets=[{"kind": "webhook", "conn_id": "sf_alert_test"}], dag_id=ALERT.dag_id, minutes=240
        )
    )
    (body,) = _wait(receiver)
    assert body["event"] == "streamforge.deadline_missed" and body["run_id"] == "scheduled__2024-08-01"
    assert "240 min" in body["error"] and "2024-08-02T04:00:00" in body["error"]


def test_deadline_callback_is_importable_as_the_dag_declares_it(dagbag) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.module_loading import import_string

    deadline = dagbag.dags["streamforge__btcusdt__api_candles_1m"].deadline[0]
    assert deadline.callback.path == "streamforge.orchestration.alerts.deadline_missed"
    assert import_string(deadline.callback.path) is alerts.deadline_missed
    assert deadline.callback.kwargs["targets"][1] == {"kind": "webhook", "conn_id": "streamforge_alert_webhook"}


@pytest.mark.parametrize(
    ("host", "port", "schema", "extra", "url"),
    [
        ("hooks.example.com", None, "https", {"endpoint": "/x/y"}, "https://hooks.example.com/x/y"),
        ("127.0.0.1", 8080, "http", {}, "http://127.0.0.1:8080"),
        ("https://alerts.example.com/", None, None, {"endpoint": "in"}, "https://alerts.example.com/in"),
    ],
)
def test_webhook_url(host: str, port: int | None, schema: str | None, extra: dict[str, str], url: str) -> None:
    assert alerts.webhook_url(host, port, schema, extra) == url


PRODUCERS = {"loader": "loader__abc123", "sink": "arango-candles__abc123"}


def _outcome(reason: str, producer: str | None = None) -> Outcome:
    return Outcome(queue_id="q", success=reason == "ok", reason=Reason(reason), message=reason, producer=producer)


@pytest.mark.parametrize(
    ("failed", "errors", "outcome", "expected"),
    [
        # the sensor read the sink's `error` before the sink's own task ended: the sink is named
        (["await_outcome"], {}, _outcome("error", "arango-candles__abc123"), ("run_sink", "its sink reported")),
        (["await_outcome", "run_sink"], {}, _outcome("error", "loader__abc123"), ("run_loader", "its loader")),
        (["await_outcome"], {}, _outcome("interrupted", "loader__abc123"), ("run_loader", "`interrupted`")),
        # the worker's task failed first (no verdict yet)
        (["run_sink"], {}, None, ("run_sink", None)),
        # a setup failure is named as such, whatever came after it
        (["create_topic"], {}, None, ("create_topic", "setup task")),
        (["plan"], {}, None, ("plan", "setup task")),
        # a worker that obeyed the DAG's stop is a consequence
        (["run_loader", "verify"], {"run_loader": "loader was interrupted (exit 3)"}, None, ("verify", None)),
        (["await_outcome"], {}, _outcome("timeout"), ("await_outcome", None)),
        (["delete_topic"], {}, None, ("delete_topic", "teardown task")),
        ([], {}, None, (None, None)),
    ],
)
def test_root_cause(
    failed: list[str], errors: dict[str, str], outcome: Outcome | None, expected: tuple[str | None, str | None]
) -> None:
    task, cause = root_cause(failed, errors, outcome, PRODUCERS)
    assert task == expected[0]
    assert (cause is None) if expected[1] is None else (expected[1] in (cause or ""))
