"""The official `apache-airflow-client` package against the running api-server, with a bearer token."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from airflow_client.client import ApiClient, Configuration, DAGApi, DagRunApi, MonitorApi
from airflow_client.client.exceptions import UnauthorizedException
from airflow_client.client.models import TriggerDAGRunPostBody

from streamforge.stack.local import LocalStack
from tests.airflow.conftest import DAG_1M, RUN_TIMEOUT, Scenario

pytestmark = pytest.mark.airflow


@pytest.fixture
def api_client(airflow_stack: LocalStack) -> Iterator[ApiClient]:
    assert airflow_stack.airflow is not None
    config = Configuration(host=airflow_stack.airflow.url, access_token=airflow_stack.airflow.token())
    with ApiClient(config) as client:
        yield client


def test_official_client_lists_triggers_and_reads_a_run(
    scenario: Scenario,  # the long runs overlap this one
    api_client: ApiClient,
    airflow_timer: Callable[[str], float],
) -> None:
    health = MonitorApi(api_client).get_health()
    assert health.scheduler.status == "healthy"

    dags = DAGApi(api_client).get_dags(dag_id_pattern="streamforge__btcusdt")
    assert DAG_1M in {d.dag_id for d in dags.dags}
    assert all(not d.is_paused for d in dags.dags if d.dag_id == DAG_1M)

    runs = DagRunApi(api_client)
    conf = {"start": "2020-01-03", "end": "2020-01-04", "source": "archive"}
    body = TriggerDAGRunPostBody(logical_date=None, conf=conf, note="apache-airflow-client")
    run = runs.trigger_dag_run(DAG_1M, body)
    assert run.conf["source"] == "archive"
    deadline = time.monotonic() + RUN_TIMEOUT
    while (state := runs.get_dag_run(DAG_1M, run.dag_run_id).state) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"run still {state}"
        time.sleep(1)
    airflow_timer("client-triggered run")
    assert state == "success"
    assert runs.get_dag_run(DAG_1M, run.dag_run_id).note == "apache-airflow-client"


def test_official_client_without_token_is_refused(airflow_stack: LocalStack) -> None:
    assert airflow_stack.airflow is not None
    with ApiClient(Configuration(host=airflow_stack.airflow.url)) as client, pytest.raises(UnauthorizedException):
        DAGApi(client).get_dags(limit=1)
