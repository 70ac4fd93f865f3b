"""`plan` (pure): names, window, env, and the cross-field rules with their messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamforge.contracts.config import LoaderSettings, SinkSettings
from streamforge.contracts.names import h6
from streamforge.orchestration.catalog import Role, read_catalog
from streamforge.orchestration.plan import ROLE_ENV_KEYS, PlanError, RunPlan, make_plan
from tests.dags.helpers import DAG_1M, SHIPPED_CATALOG

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
LOGICAL = datetime(2024, 8, 1, tzinfo=UTC)
DEFAULT_PARAMS = {
    "start": None,
    "end": None,
    "source": "auto",
    "batch_size": 1000,
    "partitions": 1,
    "timeout_minutes": 60,
}


def plan_for(dag_id: str = DAG_1M, attempt: int = 1, run_id: str = "manual__2024-08-01", **params: Any) -> RunPlan:
    spec = read_catalog(SHIPPED_CATALOG, environ={}).get(dag_id)
    return make_plan(
        spec,
        run_id=run_id,
        attempt=attempt,
        logical_date=LOGICAL,
        run_after=NOW,
        params=DEFAULT_PARAMS | params,
        now=NOW,
    )


def test_names_of_a_run() -> None:
    plan = plan_for()
    assert plan.h6 == h6(DAG_1M, "manual__2024-08-01", 1)
    assert plan.queue_id == f"wf-btcusdt-api_candles_1m-20240801-{plan.h6}"
    assert plan.data_topic == f"{plan.queue_id}-data"
    assert plan.collection == "btcusdt_api_candles_1m_2024_08_01"
    assert plan.time_range == "2024-08-01T00:00:00Z/2024-08-02T00:00:00Z"
    assert plan.producers == {Role.LOADER: f"loader__{plan.h6}", Role.SINK: f"arango-candles__{plan.h6}"}
    assert plan.pods[Role.SINK] == f"arango-candles-btcusdt-{plan.h6}"
    assert plan.created_at == NOW - timedelta(seconds=30)
    assert plan.deadline == NOW + timedelta(minutes=60)
    assert plan.replication_factor is None and plan.partitions == 1  # None: the broker's default


def test_one_component_in_both_roles_gets_distinct_producer_ids() -> None:
    """The outcome tells loader and sink apart by producer id only (dummy-service in both roles)."""
    from streamforge.orchestration.catalog import parse_catalog
    from tests.dags.helpers import catalog_data

    dummy = {"component": "dummy-service", "args": ["--exit-after", "1"]}
    spec = parse_catalog(catalog_data(workers={"loader": dummy, "sink": dummy}), environ={}).get(DAG_1M)
    plan = make_plan(spec, run_id="manual__1", attempt=1, logical_date=LOGICAL, run_after=NOW,
                     params=DEFAULT_PARAMS, now=NOW)  # fmt: skip
    assert plan.producers == {
        Role.LOADER: f"dummy-service-loader__{plan.h6}",
        Role.SINK: f"dummy-service-sink__{plan.h6}",
    }
    assert len(set(plan.pods.values())) == 2
    assert {plan.env[role]["TELEMETRY_PRODUCER_ID"] for role in Role} == set(plan.producers.values())


def test_each_attempt_is_a_new_identity() -> None:
    first, second = plan_for(attempt=1), plan_for(attempt=2)
    assert first.h6 != second.h6 and first.queue_id != second.queue_id
    assert first.collection == second.collection  # the data converges in the same place
    assert plan_for(run_id="scheduled__2024-08-01").h6 != first.h6


def test_xcom_round_trip_and_no_secrets() -> None:
    plan = plan_for()
    value = plan.xcom()
    assert RunPlan.from_xcom(value) == plan
    text = str(value).lower()
    assert "password" not in text and "sasl" not in text
    assert len(str(value)) < 4000


def test_env_parses_with_the_worker_settings() -> None:
    plan = plan_for()
    cluster = {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "ARANGO_URL": "http://arango:8529"}
    assert set(plan.env[Role.LOADER]) == set(ROLE_ENV_KEYS[Role.LOADER])
    loader = LoaderSettings.model_validate({k.lower(): v for k, v in (plan.env[Role.LOADER] | cluster).items()})
    assert loader.time_range.start == LOGICAL and loader.kafka_topic == plan.data_topic
    sink = SinkSettings.model_validate({k.lower(): v for k, v in (plan.env[Role.SINK] | cluster).items()})
    assert sink.collection_name == plan.collection and sink.telemetry_producer_id == f"arango-candles__{plan.h6}"


def test_params_window_and_overrides() -> None:
    plan = plan_for(
        start="2024-08-01T06:00:00Z",
        end="2024-08-01T07:00:00Z",
        source="rest",
        batch_size=500,
        partitions=3,
        timeout_minutes=5,
    )
    assert plan.time_range == "2024-08-01T06:00:00Z/2024-08-01T07:00:00Z"
    assert (plan.source.value, plan.batch_size, plan.partitions) == ("rest", 500, 3)
    assert plan.env[Role.LOADER]["LOADER_SOURCE"] == "rest" and plan.env[Role.LOADER]["BATCH_SIZE"] == "500"
    assert plan.deadline == NOW + timedelta(minutes=5)


def test_binance_urls_can_be_redirected() -> None:
    spec = read_catalog(SHIPPED_CATALOG, environ={}).get(DAG_1M)
    plan = make_plan(
        spec,
        run_id="r",
        attempt=1,
        logical_date=LOGICAL,
        run_after=NOW,
        params=DEFAULT_PARAMS,
        now=NOW,
        binance_api_url="http://127.0.0.1:9/",
        binance_archive_url=None,
    )
    assert plan.env[Role.LOADER]["BINANCE_API_URL"] == "http://127.0.0.1:9/"
    assert plan.env[Role.LOADER]["BINANCE_ARCHIVE_URL"] == "https://data.binance.vision/data/spot"


@pytest.mark.parametrize(
    ("dag_id", "params", "message"),
    [
        (DAG_1M, {"start": "2024-08-02", "end": "2024-08-01"}, "must be after start"),
        (DAG_1M, {"start": "2025-12-31", "end": "2026-01-02"}, "ends in the future"),
        (DAG_1M, {"start": "2023-01-01", "end": "2024-06-01"}, "split it into smaller windows"),
        (
            "streamforge__btcusdt__api_trades",
            {"start": "2024-08-01", "end": "2024-08-02T00:00:01Z"},
            "more than the 1 day(s) one api_trades run may load",
        ),
        (DAG_1M, {"timeout_minutes": 100_000}, "exceeds the catalog's max_timeout_minutes 720"),
        (DAG_1M, {"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_cross_field_rules(dag_id: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError) as info:
        plan_for(dag_id, **params)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"start": "2024-08-02", "end": "2024-08-01"}, "set `end` later than `start`"),
        ({"start": "2023-01-01", "end": "2024-06-01"}, "split it into smaller windows"),
        ({"start": "2099-01-01", "end": "2099-01-02"}, "ends in the future"),
    ],
)
def test_the_plan_task_fails_with_the_message(dagbag, conf: dict[str, Any], message: str) -> None:  # type: ignore[no-untyped-def]
    """The DAG's own `plan` callable, with the params a trigger with this conf resolves to."""
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException

    dag = dagbag.dags[DAG_1M]
    from airflow.serialization.serialized_objects import DagSerialization

    serialized = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    params = serialized.params.deep_merge(conf).validate()  # the schema accepts it: only plan can refuse
    ti = SimpleNamespace(try_number=1)
    dag_run = SimpleNamespace(run_id="manual__x", logical_date=LOGICAL, run_after=NOW)
    with pytest.raises(AirflowFailException, match=message.replace("(", r"\(").replace(")", r"\)")):
        dag.get_task("plan").python_callable(ti=ti, dag_run=dag_run, params=params)
