"""helm-values/airflow.yaml: valid for the official chart 1.22.0, and secure by its values."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

from tests.deployment.helpers import (
    AIRFLOW_TRIGGERER_SERVICE_ACCOUNT,
    AIRFLOW_VALUES,
    AIRFLOW_WORKER_SERVICE_ACCOUNT,
    REPO_ROOT,
    SCHEMAS_DIR,
    helm_merge,
    load_yaml,
    require,
)

EXPECTED_EXECUTOR = "CeleryExecutor"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    path = require(SCHEMAS_DIR / "airflow-chart-values.schema.json", "Airflow chart values schema")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def defaults() -> dict[str, Any]:
    return load_yaml(require(SCHEMAS_DIR / "airflow-chart-values.default.yaml", "Airflow chart default values"))


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return load_yaml(AIRFLOW_VALUES)


@pytest.fixture(scope="module")
def merged(defaults, values) -> dict[str, Any]:
    return helm_merge(defaults, values)


def _errors(schema, doc) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def test_schema_is_draft7_and_accepts_the_chart_defaults(schema, defaults):
    jsonschema.Draft7Validator.check_schema(schema)
    assert _errors(schema, defaults) == []


def test_values_validate_on_their_own(schema, values):
    assert _errors(schema, values) == []


def test_values_validate_merged_over_chart_defaults(schema, merged):
    # The chart validates the merged values (defaults + -f files), so this is what helm sees.
    assert _errors(schema, merged) == []


def _get(doc: dict[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# --- security ----------------------------------------------------------------------------------


def test_no_default_user_or_password(merged):
    assert _get(merged, "createUserJob.enabled") is False
    for section in ("createUserJob.defaultUser", "webserver.defaultUser"):
        user = _get(merged, section) or {}
        assert user.get("enabled") is False, section
        assert not user.get("password"), f"{section}.password must be empty (no admin:admin)"


@pytest.mark.parametrize(
    ("key", "secret", "inline_key"),
    [
        ("fernetKeySecretName", "streamforge-airflow-fernet", "fernetKey"),
        ("apiSecretKeySecretName", "streamforge-airflow-api-secret", "apiSecretKey"),
        ("jwtSecretName", "streamforge-airflow-jwt", "jwtSecret"),
    ],
)
def test_keys_come_from_existing_secrets_never_generated(merged, key, secret, inline_key):
    assert merged.get(key) == secret
    assert merged.get(inline_key) in (None, ""), f"{inline_key} must not be set inline"


def test_metadata_db_is_external_postgres_via_secret(merged):
    assert _get(merged, "data.metadataSecretName") == "streamforge-airflow-metadata"
    assert _get(merged, "postgresql.enabled") is False
    # With metadataSecretName set, data.metadataConnection (chart default `postgres`) is unused.


def test_celery_broker_credentials_by_reference(merged):
    assert _get(merged, "redis.passwordSecretName") == "streamforge-airflow-redis"
    assert _get(merged, "data.brokerUrlSecretName") == "streamforge-airflow-broker-url"
    assert not _get(merged, "redis.password")
    assert not _get(merged, "data.brokerUrl")


def test_no_chart_generated_webserver_secret_referenced(merged):
    # Airflow 3 uses [api] secret_key; the Airflow 2 webserver key env var is switched off.
    assert _get(merged, "enableBuiltInSecretEnvVars.AIRFLOW__WEBSERVER__SECRET_KEY") is False


def test_values_file_has_no_credential_values(values):
    bad = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                key = str(k)
                credential = re.search(r"(?i)(password|secret|fernetkey|^pass)$", key) or key in {
                    "apiSecretKey",
                    "webserverSecretKey",
                }
                if credential and isinstance(v, str | int | float) and v not in ("", None):
                    bad.append(f"{path}{key}")
                walk(v, f"{path}{key}.")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}{i}.")

    walk(values, "")
    assert not bad, f"credential values set inline: {bad}"


def test_connections_injected_from_secret(merged):
    entries = {e["envName"]: e for e in merged.get("secret") or []}
    for env in (
        "AIRFLOW_CONN_STREAMFORGE_KAFKA",
        "AIRFLOW_CONN_STREAMFORGE_ARANGO",
        "AIRFLOW_CONN_STREAMFORGE_AIRFLOW_API",
    ):
        assert env in entries, f"{env} not injected"
        assert entries[env]["secretName"] == "streamforge-airflow-connections"
        assert entries[env].get("secretKey") == env


def test_runs_as_non_root(merged):
    assert merged["uid"] == 50000
    pod = _get(merged, "securityContexts.pod") or {}
    assert pod.get("runAsNonRoot") is True
    assert pod.get("runAsUser") not in (None, 0)
    assert _get(merged, "securityContexts.containers.allowPrivilegeEscalation") is False


# --- executor, components, sizing -----------------------------------------------------------------


def test_executor_is_the_documented_choice(merged):
    assert merged["executor"] == EXPECTED_EXECUTOR
    text = AIRFLOW_VALUES.read_text(encoding="utf-8")
    assert re.search(r"(?m)^# EXECUTOR: CeleryExecutor", text), "the executor choice must be justified in a comment"


def test_triggerer_enabled_with_at_least_two_replicas(merged):
    assert _get(merged, "triggerer.enabled") is True
    assert _get(merged, "triggerer.replicas") >= 2


def test_dag_processor_and_api_server_enabled(merged):
    assert _get(merged, "dagProcessor.enabled") is True
    assert _get(merged, "apiServer.enabled") is True


def test_dag_processor_sized_for_hundreds_of_dags(merged):
    dag_processor = _get(merged, "config.dag_processor")
    assert int(dag_processor["min_file_process_interval"]) >= 120
    assert int(dag_processor["parsing_processes"]) >= 1
    assert int(dag_processor["dag_file_processor_timeout"]) >= 60
    assert int(_get(merged, "config.core.parallelism")) >= 32
    assert int(_get(merged, "config.core.dagbag_import_timeout")) >= 60


def test_task_running_component_uses_the_pod_launching_service_account(merged):
    # CeleryExecutor: the Celery workers run tasks and so create the KubernetesPodOperator pods.
    for section in ("workers.serviceAccount", "workers.celery.serviceAccount"):
        sa = _get(merged, section)
        assert sa["name"] == AIRFLOW_WORKER_SERVICE_ACCOUNT, section
        assert sa["create"] is False, f"{section}: created in helm-values/k8s/rbac.yaml, not by the chart"
    sa = _get(merged, "triggerer.serviceAccount")
    assert sa["name"] == AIRFLOW_TRIGGERER_SERVICE_ACCOUNT
    assert sa["create"] is False
    # Pods go to namespace stf through our Role; no launcher rights in the release namespace.
    assert merged["allowPodLaunching"] is False
    assert merged["multiNamespaceMode"] is False


def test_dags_and_package_baked_into_the_image(merged):
    assert _get(merged, "dags.gitSync.enabled") is False
    assert _get(merged, "dags.persistence.enabled") is False
    assert _get(merged, "images.airflow.repository")
    tag = str(_get(merged, "images.airflow.tag"))
    assert tag and tag != "latest"
    assert merged["airflowVersion"] == "3.3.2"
    dockerfile = (REPO_ROOT / "worker_images" / "airflow" / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"(?m)^COPY .*\bdags/ /opt/airflow/dags/?$", dockerfile), "Dockerfile must bake dags/"


def test_logs_persisted(merged):
    assert _get(merged, "logs.persistence.enabled") is True


def _enabled_components(merged) -> dict[str, dict[str, Any]]:
    """Every container the chart deploys with these values -> its resources."""
    c: dict[str, dict[str, Any]] = {}
    for name in ("scheduler", "dagProcessor", "triggerer", "apiServer"):
        section = merged[name]
        if section.get("enabled") is not False:
            c[name] = section.get("resources") or {}
            groomer = section.get("logGroomerSidecar") or {}
            if groomer.get("enabled"):
                c[f"{name}.logGroomerSidecar"] = groomer.get("resources") or {}
    if "Celery" in merged["executor"]:
        c["workers.celery"] = _get(merged, "workers.celery.resources") or _get(merged, "workers.resources") or {}
        groomer = _get(merged, "workers.logGroomerSidecar") or {}
        if groomer.get("enabled"):
            c["workers.logGroomerSidecar"] = groomer.get("resources") or {}
        if _get(merged, "redis.enabled"):
            c["redis"] = _get(merged, "redis.resources") or {}
        if _get(merged, "flower.enabled"):
            c["flower"] = _get(merged, "flower.resources") or {}
    for name in ("statsd", "pgbouncer", "migrateDatabaseJob", "createUserJob", "cleanup", "databaseCleanup"):
        if _get(merged, f"{name}.enabled"):
            c[name] = _get(merged, f"{name}.resources") or {}
    if _get(merged, "dags.gitSync.enabled"):
        c["dags.gitSync"] = _get(merged, "dags.gitSync.resources") or {}
    return c


def test_every_component_has_requests_and_limits(merged):
    components = _enabled_components(merged)
    assert {"scheduler", "dagProcessor", "triggerer", "apiServer", "workers.celery"} <= set(components)
    missing = [
        f"{name}.{kind}.{res}"
        for name, resources in components.items()
        for kind in ("requests", "limits")
        for res in ("cpu", "memory")
        if not (resources.get(kind) or {}).get(res)
    ]
    assert not missing, f"resources missing: {missing}"


def test_kafka_ca_mounted_for_airflow(merged):
    volumes = {v["name"]: v for v in merged.get("volumes") or []}
    mounts = {m["name"]: m for m in merged.get("volumeMounts") or []}
    assert volumes["streamforge-kafka-ca"]["configMap"]["name"] == "streamforge-kafka-ca"
    assert mounts["streamforge-kafka-ca"]["mountPath"] == "/etc/streamforge/kafka-ca"
    assert mounts["streamforge-kafka-ca"]["readOnly"] is True
