"""The project's deployment files, applied to a (test) Kubernetes API server as shipped.

`apply_project(plane, kafka, arango)` does README step 1-3 of helm-values/ with test values:
namespaces, RBAC, NetworkPolicy, the Strimzi CRDs (from the shared schemas) and the project's
KafkaTopics/KafkaUsers, the worker ConfigMap pointed at this machine's Kafka SASL_SSL listener
and ArangoDB, the Kafka CA ConfigMap in `stf` and `airflow`, and every Secret of the key-only
templates with its empty values filled in (real ones where a worker reads them).

`helm_template(plane, values)` renders the official chart offline; `dry_run(plane, manifest)`
has the API server validate every object (server-side apply, dry run).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from streamforge.stack.kube.control_plane import ControlPlane
from streamforge.stack.paths import REPO_ROOT, SHARED_DIR

HELM_VALUES = REPO_ROOT / "helm-values"
K8S_DIR = HELM_VALUES / "k8s"
STRIMZI_API = "v1"
STRIMZI_CRDS = ("strimzi-1.2.0-043-Crd-kafkatopic.yaml", "strimzi-1.2.0-044-Crd-kafkauser.yaml")
KUBE_VERSION = "1.36.3"  # the API server of build.sh: the chart renders for it
CHART = SHARED_DIR / "charts" / "airflow-1.22.0.tgz"
WORKER_CONFIG_MAP = "streamforge-worker-config"
KAFKA_CA_CONFIG_MAP = "streamforge-kafka-ca"
WORKER_SECRET = "streamforge-worker-credentials"
AIRFLOW_WORKER_SA = ("airflow", "streamforge-airflow-worker")
AIRFLOW_TRIGGERER_SA = ("airflow", "streamforge-airflow-triggerer")


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def dump(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def worker_config(kafka_bootstrap: str, arango_url: str, arango_db: str) -> dict[str, Any]:
    """helm-values/k8s/worker-config.yaml with this machine's addresses (the only edits its header asks for)."""
    (config_map,) = docs(K8S_DIR / "worker-config.yaml")
    config_map["data"] |= {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "ARANGO_URL": arango_url,
                           "ARANGO_DB": arango_db}  # fmt: skip
    return config_map


def filled_secrets(values: Mapping[tuple[str, str, str], str]) -> list[dict[str, Any]]:
    """Every Secret of k8s/secrets-*.yaml, each empty value from `values[(namespace, name, key)]`
    or a random test value; a value the template sets (kafka-user) is kept unless given."""
    out = []
    for path in sorted(K8S_DIR.glob("secrets-*.yaml")):
        for secret in docs(path):
            meta = secret["metadata"]
            data = secret.get("stringData") or {}
            for key, value in data.items():
                given = values.get((meta["namespace"], meta["name"], key))
                data[key] = given if given is not None else (value or secrets.token_urlsafe(24))
            out.append(secret)
    return out


def apply(plane: ControlPlane, text: str, *extra: str) -> str:
    return plane.kubectl("apply", "-f", "-", *extra, input=text).stdout


def apply_project(plane: ControlPlane, *, kafka: Any, arango: Any) -> None:
    """:param kafka: streamforge.stack.kafka.KafkaBroker (workers use its SASL_SSL listener).
    :param arango: streamforge.stack.local.ArangoTarget."""
    for name in ("namespaces.yaml", "rbac.yaml", "networkpolicy.yaml"):
        plane.kubectl("apply", "-f", str(K8S_DIR / name))
    # Strimzi's namespace is made by the Strimzi install; the CRDs and resources are the project's.
    plane.kubectl("create", "namespace", "kafka", check=False)
    for crd in STRIMZI_CRDS:
        plane.kubectl("apply", "--server-side", "-f", str(SHARED_DIR / "schemas" / "strimzi" / crd))
    plane.kubectl("wait", "--for=condition=Established", "crd/kafkatopics.kafka.strimzi.io",
                  "crd/kafkausers.kafka.strimzi.io", "--timeout=60s")  # fmt: skip
    for name in ("kafka-topics.yaml", "kafka-users.yaml"):
        plane.kubectl("apply", "-f", str(HELM_VALUES / "strimzi" / STRIMZI_API / name))
    apply(plane, dump([worker_config(kafka.sasl_ssl_bootstrap, arango.url, arango.database)]))
    ca = Path(kafka.ca_path).read_text()
    apply(plane, dump([{"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": KAFKA_CA_CONFIG_MAP, "namespace": ns}, "data": {"ca.crt": ca}}
                       for ns in ("stf", "airflow")]))  # fmt: skip
    worker = {
        ("stf", WORKER_SECRET, "kafka-user"): kafka.scram_user,
        ("stf", WORKER_SECRET, "kafka-password"): kafka.scram_password,
        ("kafka", WORKER_SECRET, "kafka-password"): kafka.scram_password,
        ("stf", WORKER_SECRET, "arango-user"): arango.username,
        ("stf", WORKER_SECRET, "arango-password"): arango.password,
    }
    apply(plane, dump(filled_secrets(worker)))


def helm_template(plane: ControlPlane, values: Path, release: str = "airflow", namespace: str = "airflow") -> str:
    """`helm template` of the official chart 1.22.0 (offline), with its own schema validation."""
    return plane.helm("template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION,
                      "-f", str(values)).stdout  # fmt: skip


def dry_run(plane: ControlPlane, manifest: str, namespace: str = "airflow") -> str:
    """Server-side apply in dry-run mode: admission, schema and RBAC checks of the API server."""
    return plane.kubectl("apply", "--server-side", "--dry-run=server", "--field-manager=streamforge-test",
                         "-n", namespace, "-f", "-", input=manifest).stdout  # fmt: skip
