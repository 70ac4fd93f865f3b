"""The DAG package parses cleanly; each DAG has the designed shape, schedule and params."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from tests.dags.helpers import DAG_1M, DAGS, REPO, catalog_data

EXPECTED = (
    {
        f"streamforge__{s}__{t}"
        for s in ("btcusdt", "ethusdt")
        for t in ("api_candles_1m", "api_candles_1h", "api_trades")
    }
    | {"streamforge__coverage", "streamforge__sweeper"}
    | {"streamforge_rollup__btcusdt_1h", "streamforge_rollup__ethusdt_1h"}
)


def test_every_catalog_dag_imports_without_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED


def test_dag_settings(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags[DAG_1M]
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert (dag.timetable.expression, str(dag.timetable.timezone)) == ("0 0 * * *", "UTC")
    assert dag.catchup is False
    assert dag.max_active_runs == 4
    assert dag.start_date == datetime(2017, 8, 17, tzinfo=UTC)
    assert dag.owner == "streamforge"
    assert {"streamforge", "btcusdt", "api_candles_1m", "pipeline:majors-candles", "kubernetes"} <= set(dag.tags)
    assert "2024-08-01" in dag.doc_md and "backfill" in dag.doc_md
    assert dag.deadline and dag.deadline[0].interval.total_seconds() == 240 * 60
    assert dagbag.dags["streamforge__ethusdt__api_trades"].max_active_runs == 2


def test_task_graph(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags[DAG_1M]
    up = {t.task_id: t.upstream_task_ids for t in dag.tasks}
    assert up["create_topic"] == {"plan"}
    assert up["run_loader"] == up["run_sink"] == {"create_topic"}
    assert up["await_outcome"] == {"create_topic", "plan"}
    assert {"run_loader", "run_sink", "await_outcome"} <= up["verify"]
    assert up["send_stop"] == {"run_loader", "run_sink", "await_outcome"}
    assert {"send_stop", "create_topic"} <= up["delete_topic"]  # verify reads ArangoDB only
    assert up["watcher"] >= {"run_loader", "run_sink", "await_outcome", "verify", "send_stop", "delete_topic"}
    assert [t.task_id for t in dag.tasks if t.is_setup] == ["plan", "create_topic"]
    assert [t.task_id for t in dag.tasks if t.is_teardown] == ["delete_topic"]
    rules = {t.task_id: t.trigger_rule.value for t in dag.tasks}
    assert rules["send_stop"] == rules["watcher"] == "one_failed"
    assert rules["delete_topic"] == "all_done_setup_success"
    retries = {t.task_id: t.retries for t in dag.tasks}
    assert retries["run_loader"] == retries["run_sink"] == retries["await_outcome"] == retries["plan"] == 0
    assert retries["create_topic"] == retries["verify"] == 2
    sensor = dag.get_task("await_outcome")
    assert sensor.deferrable is True  # kubernetes runner
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    assert isinstance(dag.get_task("run_loader"), KubernetesPodOperator)


def test_ui_names_and_task_docs(dagbag) -> None:  # type: ignore[no-untyped-def]
    """Readable names in the UI, and every task documented (survives serialisation)."""
    from airflow.serialization.serialized_objects import DagSerialization

    names = {dag_id: dag.dag_display_name for dag_id, dag in dagbag.dags.items()}
    assert names[DAG_1M] == "BTCUSDT · candles 1m"
    assert names["streamforge__btcusdt__api_trades"] == "BTCUSDT · trades"
    serialized = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dagbag.dags[DAG_1M]))
    assert serialized.dag_display_name == "BTCUSDT · candles 1m"
    undocumented = [t.task_id for t in serialized.tasks if not t.doc_md]
    assert not undocumented, undocumented


def test_default_params_validate(dagbag) -> None:  # type: ignore[no-untyped-def]
    for dag in (d for d in dagbag.dags.values() if "__api_" in d.dag_id):  # the pipelines, not their consumers
        params = dag.params.validate()
        assert params["start"] is None and params["end"] is None and params["source"] == "auto"
    assert dagbag.dags["streamforge__btcusdt__api_trades"].params.validate()["timeout_minutes"] == 180


def _trigger_params(dagbag, conf):  # type: ignore[no-untyped-def]
    """What a trigger (UI, REST conf, dag.test, backfill) does: deep_merge + validate on the serialized DAG."""
    from airflow.serialization.serialized_objects import DagSerialization

    serialized = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dagbag.dags[DAG_1M]))
    return serialized.params.deep_merge(conf).validate()


@pytest.mark.parametrize(
    "conf",
    [
        {"start": "2024-08-01", "end": "2024-08-02"},
        {"start": "2024-08-01T06:00:00Z", "end": "2024-08-01T07:30:00+02:00"},
        {"source": "archive", "batch_size": 1, "partitions": 64, "timeout_minutes": 720},
    ],
)
def test_valid_conf_is_accepted(dagbag, conf) -> None:  # type: ignore[no-untyped-def]
    assert {k: v for k, v in _trigger_params(dagbag, conf).items() if k in conf} == conf


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        (
            {"start": "2024-13-01"},
            "Invalid input for param start: '2024-13-01' is not valid under any of the given schemas",
        ),
        ({"end": "2024-08-01T25:00:00Z"}, "Invalid input for param end: '2024-08-01T25:00:00Z' is not valid"),
        ({"end": "yesterday"}, "Invalid input for param end: 'yesterday' is not valid"),
        ({"source": "ftp"}, "Invalid input for param source: 'ftp' is not one of ['auto', 'rest', 'archive']"),
        ({"batch_size": 5000}, "Invalid input for param batch_size: 5000 is greater than the maximum of 1000"),
        ({"partitions": 0}, "Invalid input for param partitions: 0 is less than the minimum of 1"),
        ({"timeout_minutes": "10"}, "Invalid input for param timeout_minutes: '10' is not of type 'integer'"),
    ],
)
def test_invalid_conf_is_refused_at_trigger(dagbag, conf, message) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError) as info:
        _trigger_params(dagbag, conf)
    assert message in str(info.value)


def test_parsing_context_builds_only_the_needed_dag(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamforge.orchestration.factory import register_dags

    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", DAG_1M)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "run_loader")
    namespace: dict[str, object] = {}
    assert register_dags(namespace, DAGS / "streamforge_catalog.yaml") == [DAG_1M]
    assert list(namespace) == [DAG_1M]


def test_dag_file_is_thin_and_parses_with_a_broken_catalog_as_an_import_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = (DAGS / "streamforge_pipelines.py").read_text()
    assert len([line for line in text.splitlines() if line and not line.startswith(("#", '"'))]) <= 6
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ndefaults: {}\npipelines: [{name: x, symbols: [BTCUSDT], types: [api_trades]}]\n")
    script = (
        "from airflow.dag_processing.dagbag import DagBag;"
        f"bag = DagBag(dag_folder={str(DAGS)!r});"
        "print(list(bag.import_errors.values())[0])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**__import__("os").environ, "STREAMFORGE_CATALOG": str(bad)},
        check=False,
    )
    assert "defaults.start_date: Field required" in result.stdout, result.stdout + result.stderr


def test_local_runner_dags(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import DAG

    from streamforge.orchestration.factory import register_dags

    monkeypatch.setenv("STREAMFORGE_RUNNER", "local")
    namespace: dict[str, DAG] = {}
    register_dags(namespace, DAGS / "streamforge_catalog.yaml")
    dag = namespace[DAG_1M]
    assert type(dag.get_task("run_sink")).__name__ == "LocalWorkerOperator"
    sensor = dag.get_task("await_outcome")
    assert sensor.deferrable is False and sensor.mode == "reschedule"


def test_poke_mode_keeps_every_waiting_task_in_its_process() -> None:
    """sensor.mode poke: the local workers and the outcome sensor poke in place (no re-queue per check)."""
    from streamforge.orchestration.catalog import parse_catalog
    from streamforge.orchestration.factory import build_dag

    data = catalog_data(runner="local", sensor={"mode": "poke", "poke_interval_seconds": 3})
    dag = build_dag(parse_catalog(data).get(DAG_1M))
    waiting = [dag.get_task(t) for t in ("run_loader", "run_sink", "await_outcome")]
    assert [(t.mode, t.poke_interval) for t in waiting] == [("poke", 3)] * 3
    assert dag.get_task("await_outcome").deferrable is False
