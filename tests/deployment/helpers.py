"""Shared helpers of the deployment tests: paths, YAML loading, Helm-style value merging."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from streamforge.stack.paths import REPO_ROOT, SHARED_DIR

SCHEMAS_DIR = SHARED_DIR / "schemas"
STRIMZI_SCHEMAS_DIR = SCHEMAS_DIR / "strimzi"

HELM_VALUES = REPO_ROOT / "helm-values"
AIRFLOW_VALUES = HELM_VALUES / "airflow.yaml"
K8S_DIR = HELM_VALUES / "k8s"
STRIMZI_DIR = HELM_VALUES / "strimzi"
DEVCONTAINER_DIR = REPO_ROOT / ".devcontainer"
CATALOG = REPO_ROOT / "dags" / "streamforge_catalog.yaml"

# Directories never scanned for Dockerfiles or manifests.
EXCLUDED_DIRS = {".venv", ".cache", ".git", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache"}

WORKER_NAMESPACE = "stf"
AIRFLOW_NAMESPACE = "airflow"
WORKER_SERVICE_ACCOUNT = "streamforge-worker"
AIRFLOW_WORKER_SERVICE_ACCOUNT = "streamforge-airflow-worker"
AIRFLOW_TRIGGERER_SERVICE_ACCOUNT = "streamforge-airflow-triggerer"
KAFKA_CLUSTER = "streamforge-kafka"


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    """Every non-empty document of a (multi-document) YAML file."""
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def helm_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge values the way Helm does: maps recursively, lists and scalars replaced, and a
    null in the override deletes the key."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def walk_files(root: Path, pattern: str) -> Iterator[Path]:
    for path in sorted(root.rglob(pattern)):
        if not EXCLUDED_DIRS.intersection(path.relative_to(root).parts):
            yield path


def require(path: Path, what: str) -> Path:
    """The path, or a clear failure naming what is missing and where it was looked for."""
    import pytest

    if not path.exists():
        pytest.fail(f"{what} not found at {path} (set STREAMFORGE_SHARED_DIR for the shared folder)")
    return path
