"""DAG runs with `runner: kubernetes` against the real API server, end to end.

One Airflow (api-server, scheduler with LocalExecutor, triggerer, dag-processor on PostgreSQL) for
the module, started by LocalStack(runner="kubernetes") on the session's control plane: the
project's helm-values/ are applied to it, and the tasks (scheduler) and the triggerer talk to
Kubernetes as the ServiceAccounts `streamforge-airflow-worker` / `-triggerer` of
helm-values/k8s/rbac.yaml (connection `streamforge_kubernetes`, a TokenRequest token each), not
as admin. Worker pods are deferrable KubernetesPodOperators; the outcome sensor is deferrable.
The pods run on the process-backed node (streamforge.stack.kube.node) as real worker processes
against the session's Kafka (SASL_SSL/SCRAM-SHA-512, CA from the ConfigMap) and ArangoDB.

Catalog: BTCUSDT 1m as shipped; BTCUSDT 1h with a sink that fails (`dummy-service --fail-after 1`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client, watch

from streamforge.stack import local as sf
from streamforge.stack.kube import ControlPlane
from streamforge.stack.local import ArangoTarget, LocalStack
from tests.dags.e2e import ALERT_CONN, WebhookReceiver
from tests.fixtures.kube import NODE

DAG_1M = "streamforge__btcusdt__api_candles_1m"
DAG_FAILING = "streamforge__btcusdt__api_candles_1h"
NS = "stf"
RUN_TIMEOUT = 420.0
CATALOG = {
    "retries": 0,
    "run": {"timeout_minutes": 10},
    "sensor": {"poke_interval_seconds": 2},
    "alerts": {"targets": [{"kind": "webhook", "conn_id": ALERT_CONN}], "run_deadline_minutes": None},
    "kubernetes": {"startup_timeout_seconds": 120},
    "pipelines": [
        {"name": "kube-1m", "symbols": ["BTCUSDT"], "types": ["api_candles_1m"]},
        {"name": "kube-failing-sink", "symbols": ["BTCUSDT"], "types": ["api_candles_1h"],
         "overrides": {"workers": {"sink": {"component": "dummy-service", "args": ["--fail-after", "1"]}}}},
    ],
}  # fmt: skip


class PodRecorder:
    """Every version of every pod in `stf` the API server reports while the module runs."""

    def __init__(self, plane: ControlPlane) -> None:
        self.api = plane.api_client()
        self.events: list[tuple[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        core = client.CoreV1Api(self.api)
        version = core.list_namespaced_pod(NS).metadata.resource_version
        while not self._stop.is_set():  # one watch, resumed where it ended
            for event in watch.Watch().stream(core.list_namespaced_pod, NS, resource_version=version,
                                              timeout_seconds=5):  # fmt: skip
                self.events.append((event["type"], event["object"]))
                version = event["object"].metadata.resource_version

    def start(self) -> PodRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.api.close()

    def pods(self, queue_id: str) -> dict[str, list[tuple[str, Any]]]:
        """pod name -> its events, for the pods of one queue."""
        out: dict[str, list[tuple[str, Any]]] = {}
        for kind, pod in list(self.events):
            if (pod.metadata.labels or {}).get("queue_id") == queue_id:
                out.setdefault(pod.metadata.name, []).append((kind, pod))
        return out


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def kube_stack(
    tmp_path_factory: pytest.TempPathFactory,
    kube_cluster: ControlPlane,
    kafka_broker: Any,
    kube_arango: ArangoTarget,
    binance_replay: Any,
    postgres: Any,
    webhook: WebhookReceiver,
) -> Iterator[LocalStack]:
    hook = httpx.URL(webhook.url)
    alert_conn = {"conn_type": "http", "host": hook.host, "port": hook.port, "schema": "http",
                  "extra": {"endpoint": hook.path}}  # fmt: skip
    stack = LocalStack(runner="kubernetes", kube=kube_cluster, kafka=kafka_broker, arango=kube_arango,
                       binance=binance_replay, postgres=postgres, catalog_overrides=CATALOG,
                       extra_env={f"AIRFLOW_CONN_{ALERT_CONN.upper()}": json.dumps(alert_conn)},
                       home=tmp_path_factory.mktemp("kube-stack"))  # fmt: skip
    stack.start()
    assert stack.airflow is not None
    stack.airflow.wait_for_dag(DAG_1M)
    stack.airflow.wait_for_dag(DAG_FAILING)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def recorder(kube_cluster: ControlPlane) -> Iterator[PodRecorder]:
    rec = PodRecorder(kube_cluster).start()
    yield rec
    rec.stop()


@pytest.fixture
def api(kube_stack: LocalStack, binance_replay: Any) -> Iterator[httpx.Client]:
    binance_replay.clear_faults()
    with kube_stack.client() as client_:
        yield client_
    binance_replay.clear_faults()


def task_log(api: httpx.Client, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
    body = sf.check(api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                            params={"full_content": True}))  # fmt: skip
    return json.dumps(body["content"])


def states(api: httpx.Client, dag_id: str, run_id: str) -> dict[str, str | None]:
    return {task: state for (_, task), state in sf.task_states(api, dag_id, run_id).items()}


def topics(kafka_broker: Any) -> set[str]:
    return set(kafka_broker.admin().list_topics(timeout=10).topics)


def wait_pods_gone(plane: ControlPlane, queue_id: str, timeout: float = 60) -> list[str]:
    with plane.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        deadline = time.monotonic() + timeout
        while True:
            left = [p.metadata.name for p in core.list_namespaced_pod(NS, label_selector=f"queue_id={queue_id}").items]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(1)


def test_a_day_of_1m_candles_runs_as_pods(
    api: httpx.Client, kube_stack: LocalStack, recorder: PodRecorder, kafka_broker: Any
) -> None:
    sf.unpause(api, DAG_1M)
    run = sf.trigger(api, DAG_1M, {"start": "2020-01-01", "end": "2020-01-02"})
    run_id = run["dag_run_id"]
    done = sf.wait_for_run(api, DAG_1M, run_id, timeout=RUN_TIMEOUT)
    task_states = states(api, DAG_1M, run_id)
    assert done["state"] == "success", task_states
    plan = sf.xcom(api, DAG_1M, run_id, "plan")
    queue_id = plan["queue_id"]
    assert sf.xcom(api, DAG_1M, run_id, "verify")["count"] == 1440
    assert kube_stack.collection_count(plan["collection"]) == 1440

    pods = recorder.pods(queue_id)
    components = {}
    for name, events in pods.items():
        created = events[0][1]
        labels = created.metadata.labels
        assert created.metadata.namespace == NS
        assert labels["app"] == "streamforge" and labels["queue_id"] == queue_id
        assert created.spec.node_selector == {"streamforge-worker": "true"}
        assert created.spec.service_account_name == "streamforge-worker"
        assert any(p.spec.node_name == NODE for _, p in events), f"{name} never scheduled onto {NODE}"
        assert any(p.status.phase == "Succeeded" for _, p in events), f"{name} did not succeed"
        assert events[-1][0] == "DELETED" or not wait_pods_gone(kube_stack.kube, queue_id), f"{name} left behind"
        components[labels["component"]] = name
    assert set(components) == {"loader", "arango-candles"}, pods.keys()
    assert not wait_pods_gone(kube_stack.kube, queue_id)

    loader_log = task_log(api, DAG_1M, run_id, "run_loader")
    sink_log = task_log(api, DAG_1M, run_id, "run_sink")
    assert components["loader"] in loader_log and queue_id in loader_log
    assert "finished" in loader_log and "finished" in sink_log  # the workers' own final events
    assert plan["data_topic"] not in topics(kafka_broker)
    assert kafka_broker.scram_password not in loader_log + sink_log


def test_a_failing_sink_pod_stops_the_loader_and_fails_the_run(
    api: httpx.Client, kube_stack: LocalStack, recorder: PodRecorder, kafka_broker: Any,
    binance_replay: Any, webhook: WebhookReceiver,
) -> None:  # fmt: skip
    # Every REST call of the loader times out (10 s) and is retried: it is still loading when the sink fails.
    binance_replay.add_fault("delay", path_prefix="/api/v3/klines", delay_seconds=30)
    sf.unpause(api, DAG_FAILING)
    run = sf.trigger(api, DAG_FAILING, {"start": "2024-08-01", "end": "2024-08-02", "source": "rest"})
    run_id = run["dag_run_id"]
    done = sf.wait_for_run(api, DAG_FAILING, run_id, timeout=RUN_TIMEOUT)
    task_states = states(api, DAG_FAILING, run_id)
    assert done["state"] == "failed", task_states
    assert task_states["run_sink"] == "failed" and task_states["run_loader"] == "failed", task_states
    assert task_states["send_stop"] == "success" and task_states["delete_topic"] == "success", task_states
    plan = sf.xcom(api, DAG_FAILING, run_id, "plan")
    queue_id = plan["queue_id"]

    loader_log = task_log(api, DAG_FAILING, run_id, "run_loader")
    assert "interrupted" in loader_log, loader_log[-3000:]  # it obeyed `stop` (exit 3)
    sink_log = task_log(api, DAG_FAILING, run_id, "run_sink")
    assert "Simulated failure" in sink_log, sink_log[-3000:]
    pods = recorder.pods(queue_id)
    assert len(pods) == 2
    exit_codes = {}
    for events in pods.values():
        for _, pod in events:
            for status in pod.status.container_statuses or []:
                if status.state.terminated:
                    exit_codes[pod.metadata.labels["component"]] = status.state.terminated.exit_code
    assert exit_codes == {"dummy-service": 1, "loader": 3}, exit_codes
    assert not wait_pods_gone(kube_stack.kube, queue_id)
    assert plan["data_topic"] not in topics(kafka_broker)
    alerts = [a for a in webhook.bodies if a.get("run_id") == run_id]
    assert len(alerts) == 1 and alerts[0]["queue_id"] == queue_id, webhook.bodies


def test_clearing_one_worker_alone_starts_no_second_pod(
    api: httpx.Client, kube_stack: LocalStack, recorder: PodRecorder
) -> None:
    sf.unpause(api, DAG_1M)
    run_id = sf.trigger(api, DAG_1M, {"start": "2020-01-03", "end": "2020-01-04"})["dag_run_id"]
    assert sf.wait_for_run(api, DAG_1M, run_id, timeout=RUN_TIMEOUT)["state"] == "success"
    first = sf.xcom(api, DAG_1M, run_id, "plan")["queue_id"]
    body = {"dag_run_id": run_id, "task_ids": ["run_sink"], "dry_run": False, "only_failed": False,
            "include_downstream": False, "include_upstream": False, "reset_dag_runs": True}  # fmt: skip
    sf.check(api.post(f"/api/v2/dags/{DAG_1M}/clearTaskInstances", json=body))
    time.sleep(2)
    done = sf.wait_for_run(api, DAG_1M, run_id, timeout=RUN_TIMEOUT)
    task_states = states(api, DAG_1M, run_id)
    # The refused sink fails; the run's state is Airflow's (its leaves, verify and watcher, were not cleared).
    assert done["state"] in sf.TERMINAL_RUN_STATES
    assert task_states["run_sink"] == "failed", task_states
    second = sf.xcom(api, DAG_1M, run_id, "plan")["queue_id"]
    assert second != first
    sink_log = task_log(api, DAG_1M, run_id, "run_sink", try_number=2)
    assert "Clear the whole DAG run" in sink_log, sink_log[-3000:]
    assert recorder.pods(second) == {}, "a pod was created for the cleared worker alone"
    assert len(recorder.pods(first)) == 2


def test_without_create_on_pods_the_run_fails_with_the_api_servers_403(
    api: httpx.Client, kube_stack: LocalStack, kube_cluster: ControlPlane
) -> None:
    with kube_cluster.api_client() as admin:
        rbac = client.RbacAuthorizationV1Api(admin)
        role = rbac.read_namespaced_role("streamforge-pod-launcher", NS)
        shipped = admin.sanitize_for_serialization(role.rules)
        reduced = [dict(r, verbs=[v for v in r["verbs"] if v != "create"]) for r in shipped]
        rbac.patch_namespaced_role("streamforge-pod-launcher", NS, {"rules": reduced})
        try:
            sf.unpause(api, DAG_1M)
            run_id = sf.trigger(api, DAG_1M, {"start": "2020-01-02", "end": "2020-01-03"})["dag_run_id"]
            deadline = time.monotonic() + RUN_TIMEOUT
            while states(api, DAG_1M, run_id).get("run_loader") not in ("failed", "success"):
                assert time.monotonic() < deadline, states(api, DAG_1M, run_id)
                time.sleep(2)
            assert states(api, DAG_1M, run_id)["run_loader"] == "failed"
            log = task_log(api, DAG_1M, run_id, "run_loader")
            assert "403" in log and "Forbidden" in log, log[-3000:]
            assert "streamforge-airflow-worker" in log  # the shipped SA's identity, not an admin
            api.patch(f"/api/v2/dags/{DAG_1M}/dagRuns/{run_id}", json={"state": "failed"})
        finally:
            rbac.patch_namespaced_role("streamforge-pod-launcher", NS, {"rules": shipped})
