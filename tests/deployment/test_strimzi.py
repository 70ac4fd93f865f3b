"""Strimzi KafkaTopic / KafkaUser manifests: valid against the CRDs of both API versions,
least-privilege ACLs, and the topic settings of ARCHITECTURE §3 / the seed's Terraform defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deployment.helpers import (
    K8S_DIR,
    KAFKA_CLUSTER,
    STRIMZI_DIR,
    STRIMZI_SCHEMAS_DIR,
    load_yaml_docs,
    require,
)

# API version -> (folder with our manifests, CRD files of the Strimzi release serving it)
VERSIONS = {
    "v1": ("v1", "strimzi-1.2.0-"),
    "v1beta2": ("v1beta2", "strimzi-0.45.0-"),
}
KINDS = {"KafkaTopic": "043-Crd-kafkatopic.yaml", "KafkaUser": "044-Crd-kafkauser.yaml"}


def _crd_schema(version: str, kind: str) -> dict[str, Any]:
    prefix = VERSIONS[version][1]
    path = require(STRIMZI_SCHEMAS_DIR / f"{prefix}{KINDS[kind]}", f"Strimzi CRD for {kind} {version}")
    (crd,) = load_yaml_docs(path)
    assert crd["spec"]["names"]["kind"] == kind
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    assert version in served, f"{path.name} does not serve {version}"
    return served[version]["schema"]["openAPIV3Schema"]


def _manifests(version: str) -> list[tuple[Path, dict[str, Any]]]:
    folder = STRIMZI_DIR / VERSIONS[version][0]
    files = sorted(folder.glob("*.yaml"))
    assert files, f"no manifests in {folder}"
    return [(f, doc) for f in files for doc in load_yaml_docs(f)]


def _unknown_fields(doc: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the API server would prune / reject in strict field validation: keys not
    declared by an object schema that neither preserves unknown fields nor allows extras."""
    out: list[str] = []
    if isinstance(doc, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        if props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
            if "additionalProperties" not in schema:
                out += [f"{path}{k}" for k in doc if k not in props]
        for k, v in doc.items():
            if props and k in props:
                out += _unknown_fields(v, props[k], f"{path}{k}.")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += _unknown_fields(v, schema["additionalProperties"], f"{path}{k}.")
    elif isinstance(doc, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(doc):
            out += _unknown_fields(v, schema["items"], f"{path}{i}.")
    return out


ALL = [(v, f, d) for v in VERSIONS for f, d in _manifests(v)]


@pytest.mark.parametrize(
    ("version", "path", "doc"), ALL, ids=[f"{v}:{f.name}:{d['metadata']['name']}" for v, f, d in ALL]
)
def test_manifest_validates_against_crd(version, path, doc):
    assert doc["apiVersion"] == f"kafka.strimzi.io/{version}", f"{path} mixes API versions"
    assert doc["kind"] in KINDS
    schema = _crd_schema(version, doc["kind"])
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    assert errors == []
    assert _unknown_fields(doc, schema) == []
    # The CRD's CEL rules (x-kubernetes-validations) on authentication: the day counts are
    # TLS-only. jsonschema cannot run CEL, so the one rule that could apply is checked here.
    auth = (doc.get("spec") or {}).get("authentication") or {}
    if auth.get("type") != "tls":
        assert "validityDays" not in auth and "renewalDays" not in auth


@pytest.mark.parametrize(
    ("version", "path", "doc"), ALL, ids=[f"{v}:{f.name}:{d['metadata']['name']}" for v, f, d in ALL]
)
def test_labelled_for_the_cluster(version, path, doc):
    assert doc["metadata"]["labels"]["strimzi.io/cluster"] == KAFKA_CLUSTER
    assert doc["metadata"]["namespace"] == "kafka"


def _by_kind(version: str, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in _manifests(version) if d["kind"] == kind}


@pytest.mark.parametrize("version", VERSIONS)
def test_control_topics(version):
    topics = _by_kind(version, "KafkaTopic")
    assert set(topics) == {"queue-control", "queue-events"}
    retention = {"queue-control": 86_400_000, "queue-events": 604_800_000}
    for name, topic in topics.items():
        spec = topic["spec"]
        assert spec.get("topicName", name) == name
        assert spec["partitions"] == 3
        assert spec["replicas"] == 3
        assert int(spec["config"]["retention.ms"]) == retention[name]
        assert spec["config"]["cleanup.policy"] == "delete"
        assert int(spec["config"]["min.insync.replicas"]) == 2


def _acls(user: dict[str, Any]) -> set[tuple[str, str, str, frozenset[str]]]:
    out = set()
    for acl in user["spec"]["authorization"]["acls"]:
        res = acl["resource"]
        ops = acl.get("operations") or [acl["operation"]]
        out.add((res["type"], res.get("name", "<all>"), res.get("patternType", "literal"), frozenset(ops)))
    return out


def _ops(*names: str) -> frozenset[str]:
    return frozenset(names)


EXPECTED_ACLS = {
    "streamforge-airflow": {
        ("topic", "wf-", "prefix", _ops("Create", "Delete", "Describe")),
        ("topic", "queue-control", "literal", _ops("Read", "Write", "Describe")),
        ("topic", "queue-events", "literal", _ops("Read", "Write", "Describe")),
        ("group", "streamforge-", "prefix", _ops("Read")),
    },
    "streamforge-worker": {
        ("topic", "wf-", "prefix", _ops("Read", "Write", "Describe")),
        ("topic", "queue-control", "literal", _ops("Read", "Write", "Describe")),
        ("topic", "queue-events", "literal", _ops("Read", "Write", "Describe")),
        ("group", "streamforge-", "prefix", _ops("Read")),
    },
}


@pytest.mark.parametrize("version", VERSIONS)
def test_users_use_scram_and_exactly_the_expected_acls(version):
    users = _by_kind(version, "KafkaUser")
    assert set(users) == set(EXPECTED_ACLS)
    for name, user in users.items():
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        assert user["spec"]["authorization"]["type"] == "simple"
        assert _acls(user) == EXPECTED_ACLS[name], name


@pytest.mark.parametrize("version", VERSIONS)
def test_no_wildcards_or_broad_rights(version):
    for name, user in _by_kind(version, "KafkaUser").items():
        for acl in user["spec"]["authorization"]["acls"]:
            res = acl["resource"]
            assert res["type"] in {"topic", "group"}, f"{name}: no cluster/transactionalId rights"
            assert res.get("name"), f"{name}: an ACL without a resource name matches everything"
            assert "*" not in res["name"], f"{name}: wildcard resource {res['name']!r}"
            assert acl.get("type", "allow") == "allow"
            assert "All" not in (acl.get("operations") or [acl.get("operation")]), name
            assert acl.get("host", "*") == "*"


@pytest.mark.parametrize("version", VERSIONS)
def test_worker_password_comes_from_the_worker_secret(version):
    worker = _by_kind(version, "KafkaUser")["streamforge-worker"]
    ref = worker["spec"]["authentication"]["password"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "streamforge-worker-credentials", "key": "kafka-password"}
    # The CRD reads that Secret from the KafkaUser's namespace: a template must exist there.
    secrets = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): d
        for f in K8S_DIR.glob("*.yaml")
        for d in load_yaml_docs(f)
        if d.get("kind") == "Secret"
    }
    namespace = worker["metadata"]["namespace"]
    assert (namespace, ref["name"]) in secrets, f"no Secret template {ref['name']} in namespace {namespace}"
    assert ref["key"] in secrets[(namespace, ref["name"])]["stringData"]


def test_both_api_versions_declare_the_same_resources():
    def strip(doc):
        return {k: v for k, v in doc.items() if k != "apiVersion"}

    v1 = sorted((strip(d) for _, d in _manifests("v1")), key=lambda d: (d["kind"], d["metadata"]["name"]))
    v1beta2 = sorted((strip(d) for _, d in _manifests("v1beta2")), key=lambda d: (d["kind"], d["metadata"]["name"]))
    assert v1 == v1beta2
