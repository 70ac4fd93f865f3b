""".devcontainer/: devcontainer.json (JSONC), its Dockerfile and the compose stack."""

from __future__ import annotations

import json
import re
from typing import Any

import json5
import pytest
from dockerfile_parse import DockerfileParser

from tests.deployment.helpers import DEVCONTAINER_DIR, REPO_ROOT, load_yaml

# Names the workers read (ARCHITECTURE §5) and the Airflow side's connections / metadata DB.
WORKER_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "QUEUE_CONTROL_TOPIC",
    "QUEUE_EVENTS_TOPIC",
    "ARANGO_URL",
    "ARANGO_DB",
    "ARANGO_USER",
    "ARANGO_PASSWORD",
}
AIRFLOW_ENV = WORKER_ENV | {
    "AIRFLOW_CONN_STREAMFORGE_KAFKA",
    "AIRFLOW_CONN_STREAMFORGE_ARANGO",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
}
SECRET_ENV = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN")
INTERPOLATION = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[?-][^}]*)?\}")
REQUIRED_INTERPOLATION = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*:\?[^}]*\}$")


@pytest.fixture(scope="module")
def devcontainer() -> dict[str, Any]:
    return json5.loads((DEVCONTAINER_DIR / "devcontainer.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(DEVCONTAINER_DIR / "compose.yaml")


def test_devcontainer_json_is_jsonc_with_compose(devcontainer, compose):
    files = devcontainer["dockerComposeFile"]
    files = [files] if isinstance(files, str) else files
    for name in files:
        assert (DEVCONTAINER_DIR / name).is_file()
    assert devcontainer["service"] in compose["services"]
    assert set(devcontainer.get("runServices", [])) <= set(compose["services"])
    assert devcontainer["remoteUser"] != "root"
    for key in ("initializeCommand", "postCreateCommand"):
        script = devcontainer[key].split()[-1]
        assert (REPO_ROOT / script).is_file(), f"{key} runs a missing {script}"


def test_dev_image_dockerfile():
    parser = DockerfileParser(path=str(DEVCONTAINER_DIR / "Dockerfile"))
    assert parser.baseimage == "ubuntu:22.04"
    args = {
        i["value"].split("=", 1)[0]: i["value"].split("=", 1)[1]
        for i in parser.structure
        if i["instruction"] == "ARG" and "=" in i["value"]
    }
    assert re.fullmatch(r"v\d+\.\d+\.\d+", args["KUBECTL_VERSION"])
    assert re.fullmatch(r"v\d+\.\d+\.\d+", args["HELM_VERSION"])
    assert args["USER_UID"] == "1001"
    content = parser.content
    for tool in ("python3.11", "kubectl", "helm", "kcat"):
        assert tool in content, f"{tool} not installed"
    assert "sha256sum --check" in content, "downloaded binaries must be verified"
    assert re.search(r"pip\S* install [^\n]*-r /opt/streamforge/requirements-dev\.txt", content), "dev lock"
    users = [i["value"] for i in parser.structure if i["instruction"] == "USER"]
    assert users and users[-1].split(":")[0] in {"1001", "${USER_UID}"}, "must end as the non-root user"


def _images(compose) -> dict[str, str | None]:
    return {name: svc.get("image") for name, svc in compose["services"].items()}


def test_every_compose_image_is_pinned(compose):
    for name, image in _images(compose).items():
        assert image, f"service {name}: give an image with a tag (also for built images)"
        ref = image.rsplit("/", 1)[-1]
        assert "@sha256:" in image or ":" in ref, f"{name}: {image} has no tag"
        tag = ref.split(":", 1)[1] if ":" in ref else ""
        assert tag != "latest", f"{name}: {image} uses latest"


def test_stack_images(compose):
    images = _images(compose)
    assert images["kafka"] == "apache/kafka:4.2.0"
    assert re.fullmatch(r"arangodb/arangodb:3\.12\.\d+(\.\d+)?", images["arangodb"])
    assert re.fullmatch(r"postgres:16\.\d+.*", images["postgres"])
    airflow = compose["services"]["airflow"]["build"]
    assert airflow["dockerfile"] == "worker_images/airflow/Dockerfile"
    assert (DEVCONTAINER_DIR / airflow["context"]).resolve() == REPO_ROOT
    dev = compose["services"]["dev"]["build"]
    assert dev["dockerfile"] == ".devcontainer/Dockerfile"
    assert (DEVCONTAINER_DIR / dev["context"]).resolve() == REPO_ROOT
    assert "KAFKA_PROCESS_ROLES" in compose["services"]["kafka"]["environment"], "Kafka must run in KRaft mode"


@pytest.mark.parametrize(("service", "names"), [("airflow", AIRFLOW_ENV), ("dev", WORKER_ENV)])
def test_services_use_the_documented_env_names(compose, service, names):
    env = compose["services"][service]["environment"]
    assert isinstance(env, dict)
    assert names <= set(env), f"{service} lacks {sorted(names - set(env))}"


def test_no_literal_secrets_in_compose(compose):
    for name, svc in compose["services"].items():
        env = svc.get("environment") or {}
        for key, value in env.items():
            value = str(value)
            if SECRET_ENV.search(key) and "CONN" not in key and "SQL_ALCHEMY" not in key:
                assert REQUIRED_INTERPOLATION.match(value), f"{name}.{key} must be ${{VAR:?...}}"
    airflow = compose["services"]["airflow"]["environment"]
    assert "${POSTGRES_PASSWORD:?" in airflow["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def _render(value: str) -> str:
    return INTERPOLATION.sub("placeholder", value)


def test_connections_are_json_with_the_expected_types(compose):
    for service in ("airflow", "dev"):
        env = compose["services"][service]["environment"]
        kafka = json.loads(_render(env["AIRFLOW_CONN_STREAMFORGE_KAFKA"]))
        assert kafka["conn_type"] == "kafka"
        assert kafka["extra"]["bootstrap.servers"] == env["KAFKA_BOOTSTRAP_SERVERS"]
        arango = json.loads(_render(env["AIRFLOW_CONN_STREAMFORGE_ARANGO"]))
        # plugins/streamforge/orchestration/connections.py: generic/http, schema = database
        assert arango["conn_type"] in {"generic", "http"}
        assert f"{arango['extra']['protocol']}://{arango['host']}:{arango['port']}" == env["ARANGO_URL"]
        assert arango["schema"] == env["ARANGO_DB"]
        assert arango["login"] == env["ARANGO_USER"]
        assert arango["password"] == "placeholder", "the ArangoDB password must be interpolated"


def _strings(node: Any):
    if isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def test_every_interpolated_variable_is_generated_and_documented(compose):
    used = {var for s in _strings(compose) for var in INTERPOLATION.findall(s)}
    assert used, "compose.yaml takes its secrets from .env"
    example = (DEVCONTAINER_DIR / ".env.example").read_text(encoding="utf-8")
    generator = (DEVCONTAINER_DIR / "init-env.sh").read_text(encoding="utf-8")
    for var in used:
        assert re.search(rf"(?m)^{var}=<set-me>$", example), f"{var} missing from .env.example"
        assert f"{var}=" in generator, f"init-env.sh does not generate {var}"
    ignored = (DEVCONTAINER_DIR / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in ignored
