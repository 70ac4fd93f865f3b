"""The catalog: the shipped file validates; a broken entry fails naming the entry and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streamforge.orchestration.catalog import (
    CatalogError,
    Role,
    Runner,
    SensorMode,
    load_catalog,
    parse_catalog,
    read_catalog,
)
from tests.dags.helpers import REPO, SHIPPED_CATALOG, catalog_data, shipped_catalog_data, write_catalog

EXPECTED_DAGS = {
    f"streamforge__{symbol}__{data_type}"
    for symbol in ("btcusdt", "ethusdt")
    for data_type in ("api_candles_1m", "api_candles_1h", "api_trades")
}


def test_shipped_catalog_validates() -> None:
    catalog = read_catalog(SHIPPED_CATALOG, environ={})
    assert {spec.dag_id for spec in catalog.dags} == EXPECTED_DAGS
    defaults = catalog.defaults
    assert defaults.kubernetes.namespace == "stf"
    assert defaults.kubernetes.service_account == "streamforge-worker"
    assert defaults.kubernetes.node_selector == {"streamforge-worker": "true"}
    assert defaults.kubernetes.credentials.secret == "streamforge-worker-credentials"
    assert defaults.kubernetes.credentials.keys == {
        "KAFKA_USER": "kafka-user",
        "KAFKA_PASSWORD": "kafka-password",
        "ARANGO_USER": "arango-user",
        "ARANGO_PASSWORD": "arango-password",
    }
    assert defaults.kubernetes.env_config_map == "streamforge-worker-config"
    assert defaults.kubernetes.kafka_ca.config_map == "streamforge-kafka-ca"
    assert defaults.kubernetes.kafka_ca.mount_path == "/etc/streamforge/kafka-ca/ca.crt"
    assert (defaults.connections.kafka, defaults.connections.arango) == ("streamforge_kafka", "streamforge_arango")
    assert defaults.runner is Runner.KUBERNETES
    trades = catalog.get("streamforge__btcusdt__api_trades").settings
    assert trades.run.timeout_minutes == 180 and trades.max_active_runs == 2  # the entry's overrides
    assert catalog.get("streamforge__btcusdt__api_candles_1m").settings.run.timeout_minutes == 60


def test_deployment_key_is_where_the_deployment_tests_read_it() -> None:
    assert shipped_catalog_data()["defaults"]["kubernetes"]["service_account"] == "streamforge-worker"


def test_runner_env_overrides_every_pipeline() -> None:
    catalog = read_catalog(SHIPPED_CATALOG, environ={"STREAMFORGE_RUNNER": "local"})
    assert {spec.settings.runner for spec in catalog.dags} == {Runner.LOCAL}
    assert {spec.settings.effective_sensor_mode for spec in catalog.dags} == {SensorMode.RESCHEDULE}
    with pytest.raises(CatalogError, match="STREAMFORGE_RUNNER='docker'"):
        read_catalog(SHIPPED_CATALOG, environ={"STREAMFORGE_RUNNER": "docker"})


def test_catalog_env_points_at_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = write_catalog(
        tmp_path / "c.yaml", catalog_data([{"name": "one", "symbols": ["SOLUSDT"], "types": ["api_candles_5m"]}])
    )
    monkeypatch.setenv("STREAMFORGE_CATALOG", str(other))
    assert [s.dag_id for s in load_catalog(SHIPPED_CATALOG).dags] == ["streamforge__solusdt__api_candles_5m"]


def test_worker_override_for_tests() -> None:
    data = catalog_data(workers={"sink": {"component": "dummy-service", "args": ["--fail-after", "1"]}})
    spec = parse_catalog(data, environ={}).get("streamforge__btcusdt__api_candles_1m")
    from streamforge.contracts.names import Component

    assert spec.settings.component(Role.SINK, spec.type) is Component.DUMMY
    assert spec.settings.module(Role.SINK, spec.type) == "streamforge_workers.dummy_service"
    assert spec.settings.args(Role.SINK) == ["--fail-after", "1"]
    assert spec.settings.module(Role.LOADER, spec.type) == "streamforge_workers.loader"


def _broken(mutate: Any) -> str:
    data = shipped_catalog_data()
    mutate(data)
    with pytest.raises(CatalogError) as info:
        parse_catalog(data, "catalog.yaml", environ={})
    return str(info.value)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda d: d["pipelines"][0].update(colour="red"),
            "pipeline 'majors-candles' (pipelines[0]): colour: Extra inputs are not permitted",
            id="unknown-field",
        ),
        pytest.param(
            lambda d: d["pipelines"][1].update(overrides={"max_active_runs": "many"}),
            "pipeline 'majors-trades' (pipelines[1]): overrides.max_active_runs: Input should be a valid integer",
            id="bad-type",
        ),
        pytest.param(
            lambda d: d["pipelines"][0]["symbols"].append("BTC-USD"),
            "pipeline 'majors-candles' (pipelines[0]): symbols.2: illegal symbol 'BTC-USD'",
            id="bad-symbol",
        ),
        pytest.param(
            lambda d: d["pipelines"][0]["types"].append("api_candles_7m"),
            "pipeline 'majors-candles' (pipelines[0]): types.2: unknown data type 'api_candles_7m'",
            id="bad-type-name",
        ),
        pytest.param(
            lambda d: d["pipelines"][1].update(overrides={"run": {"timeout_minutes": 10_000}}),
            "pipeline 'majors-trades' (pipelines[1]): overrides.run: Value error, timeout_minutes 10000".replace(
                "Value error, ", ""
            ),
            id="override-out-of-bounds",
        ),
        pytest.param(
            lambda d: d["defaults"]["kubernetes"].pop("service_account"),
            "defaults.kubernetes.service_account: Field required",
            id="defaults-missing",
        ),
        pytest.param(
            lambda d: d["defaults"].update(schedule="every day"),
            "defaults.schedule: 'every day' is not a cron expression",
            id="bad-cron",
        ),
        pytest.param(
            lambda d: d["pipelines"].append({"name": "dup", "symbols": ["BTCUSDT"], "types": ["api_trades"]}),
            "pipeline 'dup' (pipelines[2]): streamforge__btcusdt__api_trades is already defined by "
            "pipeline 'majors-trades'",
            id="duplicate-dag",
        ),
        pytest.param(
            lambda d: d["defaults"]["images"].pop("arango-trades"),
            "pipeline 'majors-trades' (pipelines[1]): images: no image for arango-trades",
            id="no-image",
        ),
        pytest.param(
            lambda d: d["defaults"]["alerts"]["targets"].append({"kind": "pager", "conn_id": "x"}),
            "defaults.alerts.targets.2: Input tag 'pager' found using 'kind' does not match",
            id="unknown-alert-kind",
        ),
    ],
)
def test_broken_entry_names_entry_and_field(mutate: Any, expected: str) -> None:
    assert expected in _broken(mutate)


def test_every_problem_is_reported_at_once() -> None:
    def two_problems(d: dict[str, Any]) -> None:
        d["pipelines"][0]["symbols"] = ["B"]
        d["pipelines"][1]["typo"] = 1

    message = _broken(two_problems)
    assert "pipelines[0]): symbols.0" in message and "pipelines[1]): typo" in message


def test_cli_accepts_the_shipped_catalog() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamforge", "catalog", "validate", str(SHIPPED_CATALOG), "--list"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) >= EXPECTED_DAGS
    assert "OK, 6 DAGs" in result.stdout


def test_cli_refuses_a_broken_catalog_naming_entry_and_field(tmp_path: Path) -> None:
    data = shipped_catalog_data()
    data["pipelines"][1]["overrides"] = {"retries": "twice"}
    bad = write_catalog(tmp_path / "bad.yaml", data)
    result = subprocess.run(
        [sys.executable, "-m", "streamforge", "catalog", "validate", str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert (
        "pipeline 'majors-trades' (pipelines[1]): overrides.retries: Input should be a valid integer" in result.stderr
    )


def test_cli_refuses_unreadable_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults: [unclosed\n")
    from typer.testing import CliRunner

    from streamforge.cli import app

    for path in (bad, tmp_path / "missing.yaml"):
        result = CliRunner().invoke(app, ["catalog", "validate", str(path)])
        assert result.exit_code == 1, result.output
        assert "error:" in result.output
