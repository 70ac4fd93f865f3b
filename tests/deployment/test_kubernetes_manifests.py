"""Kubernetes manifests in helm-values/k8s: valid (strict) for current Kubernetes releases,
least-privilege RBAC, and consistent with the names the DAG package renders (the catalog)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.deployment.helpers import (
    AIRFLOW_NAMESPACE,
    AIRFLOW_TRIGGERER_SERVICE_ACCOUNT,
    AIRFLOW_VALUES,
    AIRFLOW_WORKER_SERVICE_ACCOUNT,
    CATALOG,
    HELM_VALUES,
    K8S_DIR,
    WORKER_NAMESPACE,
    WORKER_SERVICE_ACCOUNT,
    load_yaml,
    load_yaml_docs,
)

# The oldest Kubernetes minor we support and the newest schema kubernetes-validate ships.
K8S_VERSIONS = sorted({"1.33.0", kubernetes_validate.latest_version()})
ALLOWED_KINDS = {
    "Namespace",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "NetworkPolicy",
    "ConfigMap",
    "Secret",
    "Job",
}

RBAC_FILE = K8S_DIR / "rbac.yaml"
CA_CONFIG_MAP = "streamforge-kafka-ca"
CA_MOUNT_DIR = "/etc/streamforge/kafka-ca"
WORKER_SECRET = "streamforge-worker-credentials"
WORKER_CONFIG_MAP = "streamforge-worker-config"


def _docs() -> list[tuple[Path, dict[str, Any]]]:
    files = sorted(K8S_DIR.glob("*.yaml"))
    assert files, f"no manifests in {K8S_DIR}"
    return [(f, d) for f in files for d in load_yaml_docs(f)]


DOCS = _docs()
IDS = [f"{f.name}:{d['kind']}/{d['metadata']['name']}" for f, d in DOCS]


def _of_kind(kind: str, files: list[Path] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
        for f, d in DOCS
        if d["kind"] == kind and (files is None or f in files)
    }


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(("path", "doc"), DOCS, ids=IDS)
def test_manifest_is_valid_kubernetes(path, doc, version):
    assert doc["kind"] in ALLOWED_KINDS, f"{path.name}: unexpected kind {doc['kind']}"
    kubernetes_validate.validate(doc, version, strict=True)


def test_nothing_cluster_wide_anywhere_in_helm_values():
    for path in sorted(HELM_VALUES.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        for kind in ("ClusterRole", "ClusterRoleBinding"):
            assert f"kind: {kind}\n" not in text, f"{path.name} declares a {kind}"


def test_namespaced_objects_name_their_namespace():
    for path, doc in DOCS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace"), f"{path.name}: {doc['kind']}/{doc['metadata']['name']}"


# --- RBAC ---------------------------------------------------------------------------------------------


def _rules(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule.get("apiGroups", [""]):
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def test_pod_launcher_role_allows_exactly_what_kubernetes_pod_operator_needs():
    role = _of_kind("Role")[(WORKER_NAMESPACE, "streamforge-pod-launcher")]
    assert _rules(role) == {
        ("", "pods"): {"create", "get", "list", "watch", "delete", "patch"},
        ("", "pods/log"): {"get"},
        # list is what KubernetesPodOperator needs; watch lets the provider stream events instead of polling
        ("", "events"): {"list", "watch"},
    }


def test_pod_watcher_role_is_read_and_delete_only():
    role = _of_kind("Role")[(WORKER_NAMESPACE, "streamforge-pod-watcher")]
    assert _rules(role) == {
        ("", "pods"): {"get", "list", "watch", "delete"},
        ("", "pods/log"): {"get"},
        ("", "events"): {"list", "watch"},
    }


def test_no_wildcards_in_roles():
    for (_, name), role in _of_kind("Role").items():
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), f"Role {name}: wildcard in {field}"
            assert not rule.get("resourceNames"), "unexpected resourceNames"
    for (ns, _name), _role in _of_kind("Role").items():
        assert ns == WORKER_NAMESPACE, "Roles only in the worker namespace"


@pytest.mark.parametrize(
    ("role", "service_account"),
    [
        ("streamforge-pod-launcher", AIRFLOW_WORKER_SERVICE_ACCOUNT),
        ("streamforge-pod-watcher", AIRFLOW_TRIGGERER_SERVICE_ACCOUNT),
    ],
)
def test_roles_bound_to_the_airflow_service_accounts(role, service_account):
    binding = _of_kind("RoleBinding")[(WORKER_NAMESPACE, role)]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": service_account, "namespace": AIRFLOW_NAMESPACE}]
    assert (AIRFLOW_NAMESPACE, service_account) in _of_kind("ServiceAccount", [RBAC_FILE])


def test_chart_values_use_the_rbac_service_accounts():
    values = load_yaml(AIRFLOW_VALUES)
    assert values["workers"]["celery"]["serviceAccount"]["name"] == AIRFLOW_WORKER_SERVICE_ACCOUNT
    assert values["workers"]["serviceAccount"]["name"] == AIRFLOW_WORKER_SERVICE_ACCOUNT
    assert values["triggerer"]["serviceAccount"]["name"] == AIRFLOW_TRIGGERER_SERVICE_ACCOUNT


def test_worker_service_account_exists_and_has_no_api_rights():
    accounts = _of_kind("ServiceAccount", [RBAC_FILE])
    sa = accounts.get((WORKER_NAMESPACE, WORKER_SERVICE_ACCOUNT))
    assert sa is not None, f"ServiceAccount {WORKER_SERVICE_ACCOUNT} missing in {RBAC_FILE.name}"
    assert sa["automountServiceAccountToken"] is False
    for (_, name), binding in _of_kind("RoleBinding").items():
        for subject in binding["subjects"]:
            assert subject["name"] != WORKER_SERVICE_ACCOUNT, f"RoleBinding {name} gives the worker SA rights"


# --- the catalog (dags/streamforge_catalog.yaml) renders these names into every worker pod ------------


@pytest.fixture(scope="module")
def catalog_kubernetes() -> dict[str, Any]:
    if not CATALOG.exists():
        pytest.fail(
            f"catalog {CATALOG.relative_to(CATALOG.parents[1])} not found: it must name the pod service account"
        )
    kubernetes = ((load_yaml(CATALOG) or {}).get("defaults") or {}).get("kubernetes")
    if not kubernetes or "service_account" not in kubernetes:
        pytest.fail("catalog has no defaults.kubernetes.service_account")
    return kubernetes


def test_catalog_service_account_exists_in_rbac(catalog_kubernetes):
    namespace = catalog_kubernetes.get("namespace", WORKER_NAMESPACE)
    name = catalog_kubernetes["service_account"]
    sa = _of_kind("ServiceAccount", [RBAC_FILE]).get((namespace, name))
    assert sa is not None, f"catalog pod service account {namespace}/{name} is not a ServiceAccount in {RBAC_FILE.name}"
    assert sa["automountServiceAccountToken"] is False


def test_catalog_names_match_the_manifests(catalog_kubernetes):
    k = catalog_kubernetes
    assert k.get("namespace", WORKER_NAMESPACE) == WORKER_NAMESPACE
    if "node_selector" in k:
        assert k["node_selector"] == {"streamforge-worker": "true"}
    if "env_config_map" in k:
        assert (WORKER_NAMESPACE, k["env_config_map"]) in _of_kind("ConfigMap")
    if "credentials" in k:
        secret = _of_kind("Secret").get((WORKER_NAMESPACE, k["credentials"]["secret"]))
        assert secret is not None, f"no Secret template {k['credentials']['secret']}"
        assert set(k["credentials"]["keys"].values()) <= set(secret["stringData"])
    if "kafka_ca" in k:
        assert k["kafka_ca"]["config_map"] == CA_CONFIG_MAP
        assert k["kafka_ca"]["key"] == "ca.crt"
        assert k["kafka_ca"]["mount_path"] in (CA_MOUNT_DIR, f"{CA_MOUNT_DIR}/ca.crt")
    if "run_as_user" in k:
        assert k["run_as_user"] == 1001


# --- Secrets, ConfigMap -------------------------------------------------------------------------------


def test_secret_templates_list_keys_only():
    for (ns, name), secret in _of_kind("Secret").items():
        assert "data" not in secret, f"{ns}/{name}: templates use stringData with empty values"
        for key, value in secret["stringData"].items():
            if key.endswith("-user") and value:
                continue  # a user name is not a secret
            assert value == "", f"{ns}/{name}: {key} must be empty in the committed template"


def test_airflow_secret_templates_cover_every_secret_the_chart_values_reference():
    values = load_yaml(AIRFLOW_VALUES)
    referenced = {
        (values["fernetKeySecretName"], "fernet-key"),
        (values["apiSecretKeySecretName"], "api-secret-key"),
        (values["jwtSecretName"], "jwt-secret"),
        (values["data"]["metadataSecretName"], "connection"),
        (values["data"]["brokerUrlSecretName"], "connection"),
        (values["redis"]["passwordSecretName"], "password"),
    } | {(e["secretName"], e["secretKey"]) for e in values["secret"]}
    secrets = _of_kind("Secret")
    for name, key in sorted(referenced):
        secret = secrets.get((AIRFLOW_NAMESPACE, name))
        assert secret is not None, f"no template for Secret {AIRFLOW_NAMESPACE}/{name}"
        assert key in secret["stringData"], f"Secret {name} lacks key {key}"


def test_worker_secret_and_config_map():
    secret = _of_kind("Secret")[(WORKER_NAMESPACE, WORKER_SECRET)]
    assert set(secret["stringData"]) == {"kafka-user", "kafka-password", "arango-user", "arango-password"}
    config = _of_kind("ConfigMap")[(WORKER_NAMESPACE, WORKER_CONFIG_MAP)]["data"]
    assert config["KAFKA_BOOTSTRAP_SERVERS"].endswith(":9093")
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert config["KAFKA_CA_PATH"] == f"{CA_MOUNT_DIR}/ca.crt"
    assert config["QUEUE_CONTROL_TOPIC"] == "queue-control"
    assert config["QUEUE_EVENTS_TOPIC"] == "queue-events"
    assert config["ARANGO_DB"] == "streamforge"
    assert config["ARANGO_URL"].startswith(("http://", "https://"))
    assert not {k for k in config if "PASSWORD" in k or k.endswith("_USER")}, "credentials belong in the Secret"


# --- debug Jobs follow the worker pod conventions ------------------------------------------------------


JOBS = sorted(_of_kind("Job").items())


@pytest.mark.parametrize(("key", "job"), JOBS, ids=[name for (_, name), _ in JOBS])
def test_debug_job_follows_worker_conventions(key, job):
    assert {"dummy-service-manual", "debug-producer-manual"} <= {name for (_, name), _ in JOBS}
    assert key[0] == WORKER_NAMESPACE
    template = job["spec"]["template"]
    spec = template["spec"]
    assert template["metadata"]["labels"]["app"] == "streamforge"
    assert job["metadata"]["labels"]["app"] == "streamforge"
    assert spec["serviceAccountName"] == WORKER_SERVICE_ACCOUNT
    assert spec["automountServiceAccountToken"] is False
    assert spec["nodeSelector"] == {"streamforge-worker": "true"}
    assert spec["restartPolicy"] == "Never"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 1001
    volumes = {v["name"]: v for v in spec["volumes"]}
    secret_keys = set(_of_kind("Secret")[(WORKER_NAMESPACE, WORKER_SECRET)]["stringData"])
    for container in spec["containers"]:
        image = container["image"]
        assert image.startswith("ghcr.io/streamforge/") and ":" in image.rsplit("/", 1)[-1]
        assert not image.endswith(":latest")
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["resources"]["limits"] and container["resources"]["requests"]
        assert {"configMapRef": {"name": WORKER_CONFIG_MAP}} in container["envFrom"]
        for env in container.get("env", []):
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == WORKER_SECRET and ref["key"] in secret_keys
            if "PASSWORD" in env["name"]:
                assert ref, f"{env['name']} must come from the Secret"
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        ca_mount = mounts[CA_MOUNT_DIR]
        assert ca_mount["readOnly"] is True
        ca_volume = volumes[ca_mount["name"]]["configMap"]
        assert ca_volume["name"] == CA_CONFIG_MAP
        assert {"key": "ca.crt", "path": "ca.crt"} in ca_volume["items"]


# --- NetworkPolicy ---------------------------------------------------------------------------------


def test_network_policy_limits_worker_egress():
    policy = _of_kind("NetworkPolicy")[(WORKER_NAMESPACE, "streamforge-worker")]["spec"]
    assert policy["podSelector"] == {"matchLabels": {"app": "streamforge"}}
    assert "Egress" in policy["policyTypes"]
    ports = {(p.get("protocol", "TCP"), p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 9093), ("TCP", 8529), ("TCP", 443)}
    for rule in policy["egress"]:
        assert rule.get("to"), "every egress rule names its destination"
        for peer in rule["to"]:
            block = peer.get("ipBlock")
            if block:
                assert {p["port"] for p in rule["ports"]} == {443}, "the internet only on 443"
                assert "10.0.0.0/8" in block.get("except", [])
