"""helm-values/ on a real API server: applied as shipped, and the chart's render dry-run applied.

`kube_project` applied namespaces, RBAC, NetworkPolicy, Strimzi CRDs + KafkaTopics/KafkaUsers,
the worker ConfigMap and the Secrets of the key-only templates (kubectl fails the fixture on
any refusal); these tests check what the server now holds and what it would refuse.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from streamforge.stack.kube import ControlPlane
from streamforge.stack.kube.control_plane import KubeHarnessError
from streamforge.stack.kube.deploy import AIRFLOW_WORKER_SA, HELM_VALUES, K8S_DIR, docs, dry_run, helm_template


def test_every_shipped_object_is_on_the_server(kube_project: ControlPlane) -> None:
    files = [K8S_DIR / f"{name}.yaml" for name in ("namespaces", "rbac", "networkpolicy", "worker-config")]
    files += sorted(K8S_DIR.glob("secrets-*.yaml"))
    files += [HELM_VALUES / "strimzi" / "v1" / f"kafka-{kind}.yaml" for kind in ("topics", "users")]
    shipped = [doc for path in files for doc in docs(path)]
    missing = []
    for obj in shipped:
        ns = obj["metadata"].get("namespace")
        ref = f"{obj['kind'].lower()}/{obj['metadata']['name']}"
        found = kube_project.kubectl("get", ref, *(["-n", ns] if ns else []), "-o", "name", check=False)
        if found.returncode != 0:
            missing.append(f"{ns}/{ref}: {found.stderr.strip()}")
    assert not missing
    assert len(shipped) >= 15


def test_the_secrets_hold_values_and_the_templates_none(kube_project: ControlPlane) -> None:
    with kube_project.api_client() as api:
        secret = client.CoreV1Api(api).read_namespaced_secret("streamforge-worker-credentials", "stf")
    assert set(secret.data) == {"kafka-user", "kafka-password", "arango-user", "arango-password"}
    assert all(secret.data.values())
    for path in K8S_DIR.glob("secrets-*.yaml"):
        for template in docs(path):
            assert all(v in ("", "streamforge-worker") for v in template["stringData"].values()), path


def test_the_airflow_worker_sa_may_do_exactly_what_the_pod_operator_needs(kube_project: ControlPlane) -> None:
    as_sa = f"system:serviceaccount:{AIRFLOW_WORKER_SA[0]}:{AIRFLOW_WORKER_SA[1]}"

    def can(*args: str) -> bool:
        out = kube_project.kubectl("auth", "can-i", *args, "--as", as_sa, check=False)
        return out.stdout.strip() == "yes"

    assert can("create", "pods", "-n", "stf") and can("delete", "pods", "-n", "stf")
    assert can("get", "pods", "--subresource=log", "-n", "stf")
    assert not can("create", "pods", "-n", "airflow")
    assert not can("get", "secrets", "-n", "stf")
    assert not can("create", "pods", "--subresource=exec", "-n", "stf")


@pytest.fixture(scope="module")
def rendered(kube_project: ControlPlane) -> str:
    return helm_template(kube_project, HELM_VALUES / "airflow.yaml")


def test_the_chart_renders_and_every_object_passes_a_server_side_dry_run(
    kube_project: ControlPlane, rendered: str
) -> None:
    objects = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "StatefulSet", "Service", "ConfigMap"} <= kinds, kinds
    out = dry_run(kube_project, rendered)
    applied = [line for line in out.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(objects), out


def _broken_values(tmp_path: Path, mutate: Any) -> Path:
    values = yaml.safe_load((HELM_VALUES / "airflow.yaml").read_text())
    broken = copy.deepcopy(values)
    mutate(broken)
    path = tmp_path / "airflow.yaml"
    path.write_text(yaml.safe_dump(broken))
    return path


def test_a_wrong_type_in_the_values_is_refused(kube_project: ControlPlane, tmp_path: Path) -> None:
    """The chart's values schema refuses it at `helm template`, before anything reaches a cluster."""
    path = _broken_values(tmp_path, lambda v: v["scheduler"].__setitem__("replicas", "two"))
    with pytest.raises(KubeHarnessError, match="replicas"):
        helm_template(kube_project, path)


def test_a_value_only_the_api_server_refuses_is_caught_by_the_dry_run(
    kube_project: ControlPlane, tmp_path: Path
) -> None:
    """A malformed resource quantity passes the chart's schema (a string) but not the API server."""

    def bad_quantity(values: dict[str, Any]) -> None:
        values["scheduler"].setdefault("resources", {}).setdefault("limits", {})["memory"] = "lots"

    rendered = helm_template(kube_project, _broken_values(tmp_path, bad_quantity))
    with pytest.raises(KubeHarnessError, match=r"quantities must match|lots"):
        dry_run(kube_project, rendered)


def test_the_worker_config_map_is_the_shipped_one_with_local_addresses(kube_project: ControlPlane) -> None:
    (shipped,) = docs(K8S_DIR / "worker-config.yaml")
    with kube_project.api_client() as api:
        live = client.CoreV1Api(api).read_namespaced_config_map("streamforge-worker-config", "stf")
    changed = {k for k in shipped["data"] if shipped["data"][k] != live.data[k]}
    assert changed <= {"KAFKA_BOOTSTRAP_SERVERS", "ARANGO_URL", "ARANGO_DB"}, json.dumps(live.data)
    assert live.data["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
