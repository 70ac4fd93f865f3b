"""Rendering the worker pods of streamforge__btcusdt__api_candles_1m for logical date 2024-08-01.

No cluster: render_template_fields + build_pod_request_obj(dry_run=True) (airflow-3-notes §3).
The plan XCom comes from the DAG's real `plan` callable, run with the context a scheduled run
of 2024-08-01 would give it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from streamforge.contracts.config import LoaderSettings, SinkSettings
from streamforge.contracts.names import h6
from tests.dags.helpers import DAG_1M

LOGICAL = datetime(2024, 8, 1, tzinfo=UTC)
RUN_ID = "scheduled__2024-08-01T00:00:00+00:00"
H6 = h6(DAG_1M, RUN_ID, 1)
QUEUE_ID = f"wf-btcusdt-api_candles_1m-20240801-{H6}"
# What envFrom (ConfigMap streamforge-worker-config) and the secretKeyRefs provide in the cluster.
CONFIG_MAP = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka-bootstrap.kafka:9093",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "QUEUE_CONTROL_TOPIC": "queue-control",
    "QUEUE_EVENTS_TOPIC": "queue-events",
    "ARANGO_URL": "http://arangodb.arangodb:8529",
    "ARANGO_DB": "streamforge",
}


@dataclass
class FakeTI:
    xcoms: dict[str, Any] = field(default_factory=dict)
    try_number: int = 1
    dag_id: str = DAG_1M
    task_id: str = "plan"
    run_id: str = RUN_ID
    map_index: int = -1

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
        return self.xcoms.get(task_ids) if key == "return_value" else None


@dataclass
class FakeDagRun:
    run_id: str = RUN_ID
    logical_date: datetime = LOGICAL
    run_after: datetime = datetime(2024, 8, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def rendered(dagbag) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    dag = dagbag.dags[DAG_1M]
    params = dag.params.validate()
    plan = dag.get_task("plan").python_callable(ti=FakeTI(), dag_run=FakeDagRun(), params=params)
    ti = FakeTI(xcoms={"plan": plan})
    pods = {}
    for task_id in ("run_loader", "run_sink"):
        op = copy.deepcopy(dag.get_task(task_id))
        op.render_template_fields({"params": params, "ti": ti, "ts_nodash": "20240801T000000"})
        pods[task_id] = op.build_pod_request_obj(dry_run=True)
    return {"plan": plan, "pods": pods}


def _env(pod: Any) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    container = pod.spec.containers[0]
    literal = {e.name: e.value for e in container.env if e.value_from is None}
    secret = {
        e.name: (e.value_from.secret_key_ref.name, e.value_from.secret_key_ref.key)
        for e in container.env
        if e.value_from is not None
    }
    return literal, secret


@pytest.mark.parametrize("task_id", ["run_loader", "run_sink"])
def test_pod_follows_the_conventions(rendered: dict[str, Any], task_id: str) -> None:
    pod = rendered["pods"][task_id]
    component = "loader" if task_id == "run_loader" else "arango-candles"
    assert pod.metadata.namespace == "stf"
    assert pod.metadata.name == f"{component}-btcusdt-{H6}"
    assert pod.metadata.labels["app"] == "streamforge"
    assert pod.metadata.labels["queue_id"] == QUEUE_ID
    assert pod.metadata.labels["component"] == component
    spec = pod.spec
    assert spec.node_selector == {"streamforge-worker": "true"}
    assert spec.service_account_name == "streamforge-worker"
    assert spec.automount_service_account_token is False
    assert spec.restart_policy == "Never"
    assert spec.security_context.run_as_non_root is True and spec.security_context.run_as_user == 1001
    container = spec.containers[0]
    assert container.image == f"ghcr.io/streamforge/{component}:0.1.0"
    assert container.command[:2] == ["python", "-m"]
    csc = container.security_context
    assert csc.read_only_root_filesystem is True and csc.allow_privilege_escalation is False
    assert csc.capabilities.drop == ["ALL"] and csc.run_as_non_root is True
    assert container.resources.limits["memory"] == "512Mi"
    assert [e.config_map_ref.name for e in container.env_from] == ["streamforge-worker-config"]
    ca_volume = next(v for v in spec.volumes if v.name == "kafka-ca")
    assert ca_volume.config_map.name == "streamforge-kafka-ca"
    assert [(i.key, i.path) for i in ca_volume.config_map.items] == [("ca.crt", "ca.crt")]
    mount = next(m for m in container.volume_mounts if m.name == "kafka-ca")
    assert (mount.mount_path, mount.read_only) == ("/etc/streamforge/kafka-ca", True)


def test_loader_env(rendered: dict[str, Any]) -> None:
    literal, secret = _env(rendered["pods"]["run_loader"])
    assert literal["QUEUE_ID"] == QUEUE_ID
    assert literal["SYMBOL"] == "BTCUSDT" and literal["TYPE"] == "api_candles_1m"
    assert literal["KAFKA_TOPIC"] == f"{QUEUE_ID}-data"
    assert literal["TIME_RANGE"] == "2024-08-01T00:00:00Z/2024-08-02T00:00:00Z"
    assert literal["TELEMETRY_PRODUCER_ID"] == f"loader__{H6}"
    assert secret == {
        "KAFKA_USER": ("streamforge-worker-credentials", "kafka-user"),
        "KAFKA_PASSWORD": ("streamforge-worker-credentials", "kafka-password"),
    }
    settings = LoaderSettings.model_validate(
        {k.lower(): v for k, v in (CONFIG_MAP | literal | {n: "<secret>" for n in secret}).items()}
    )
    assert settings.queue_id == QUEUE_ID and settings.time_range.start == LOGICAL


def test_sink_env(rendered: dict[str, Any]) -> None:
    literal, secret = _env(rendered["pods"]["run_sink"])
    assert literal["QUEUE_ID"] == QUEUE_ID
    assert literal["COLLECTION_NAME"] == "btcusdt_api_candles_1m_2024_08_01"
    assert literal["KAFKA_TOPIC"] == f"{QUEUE_ID}-data"
    assert set(secret) == {"KAFKA_USER", "KAFKA_PASSWORD", "ARANGO_USER", "ARANGO_PASSWORD"}
    assert secret["ARANGO_PASSWORD"] == ("streamforge-worker-credentials", "arango-password")
    settings = SinkSettings.model_validate(
        {k.lower(): v for k, v in (CONFIG_MAP | literal | {n: "<secret>" for n in secret}).items()}
    )
    assert settings.collection_name == "btcusdt_api_candles_1m_2024_08_01"
    assert settings.component.value == "arango-candles"


@pytest.mark.parametrize("task_id", ["run_loader", "run_sink"])
def test_no_credential_is_a_literal(rendered: dict[str, Any], task_id: str) -> None:
    literal, _ = _env(rendered["pods"][task_id])
    assert not {k for k in literal if "PASSWORD" in k or "USER" in k}
    assert "password" not in str(rendered["plan"]).lower()
