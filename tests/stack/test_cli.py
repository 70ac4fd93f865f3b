"""The `streamforge` command without a running stack: its command groups, status and down."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from streamforge.cli import GROUPS, app


def test_every_command_and_group_is_registered() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("up", "down", "status", "demo", *GROUPS):
        assert name in result.output


def test_status_and_down_without_a_stack(tmp_path: Path) -> None:
    status = CliRunner().invoke(app, ["status", "--state-dir", str(tmp_path)])
    assert status.exit_code == 1 and "no stack runs" in status.output
    down = CliRunner().invoke(app, ["down", "--state-dir", str(tmp_path)])
    assert down.exit_code == 0 and "no stack runs" in down.output


def test_a_stale_state_file_is_not_a_running_stack(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text('{"pid": 999999999, "airflow_ui": "http://127.0.0.1:1"}')
    assert CliRunner().invoke(app, ["status", "--state-dir", str(tmp_path)]).exit_code == 1


def test_up_refuses_kafka_settings_without_a_bootstrap(tmp_path: Path) -> None:
    settings = tmp_path / "kafka.json"
    settings.write_text("{}")
    result = CliRunner().invoke(app, ["up", "--state-dir", str(tmp_path), "--kafka-config", str(settings)])
    assert result.exit_code == 2 and "--kafka-bootstrap" in result.output
