"""What Airflow clears with a task, and the guard for the part it does not.

The end-to-end proof (a failed run cleared and re-run in place, not fooled by its first
attempt's events) is test_e2e_local.py::test_a_cleared_run_replans_and_ignores_the_earlier_attempt.
"""

from __future__ import annotations

from typing import Any

import pytest

from streamforge.orchestration.guards import QUEUE_XCOM_KEY, claim_queue
from tests.dags.helpers import DAG_1M

SETUP_AND_TEARDOWN = {"plan", "create_topic", "delete_topic"}


@pytest.fixture(scope="module")
def serialized(dagbag):  # type: ignore[no-untyped-def]
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dagbag.dags[DAG_1M]))


def _cleared_with(serialized: Any, task_id: str, downstream: bool) -> set[str]:
    """The task ids the UI / REST clear of one task instance covers (find_relevant_relatives)."""
    subset = serialized.partial_subset(task_ids=[task_id], include_downstream=downstream, include_upstream=False)
    return set(subset.task_dict)


@pytest.mark.parametrize("task_id", ["run_loader", "run_sink", "await_outcome", "send_stop"])
def test_clearing_any_task_of_the_attempt_re_plans(serialized: Any, task_id: str) -> None:
    """UI / REST clear with downstream, and `airflow tasks clear` (partial_subset) either way."""
    for downstream in (True, False):
        assert SETUP_AND_TEARDOWN <= _cleared_with(serialized, task_id, downstream)


def test_clearing_verify_checks_the_same_attempt_again(serialized: Any) -> None:
    """verify sits outside the topic's setup scope (a window before the listing has no topic but
    is still verified): clearing it re-checks the stored data of the plan it reads, loads nothing."""
    for downstream in (True, False):
        cleared = _cleared_with(serialized, "verify", downstream)
        assert "verify" in cleared and not cleared & SETUP_AND_TEARDOWN


def test_clearing_plan_with_downstream_clears_the_whole_attempt(serialized: Any) -> None:
    assert _cleared_with(serialized, "plan", True) == set(serialized.task_dict)


def test_airflow_does_not_clear_siblings(serialized: Any) -> None:
    """Why guards.claim_queue exists: the loader stays done when only the sink is cleared."""
    assert "run_loader" not in _cleared_with(serialized, "run_sink", True)


class FakeTI:
    def __init__(self, task_id: str, xcoms: dict[str, str], states: dict[str, str]) -> None:
        self.task_id, self.dag_id, self.run_id, self.id, self.try_number = task_id, DAG_1M, "r1", "ti-2", 2
        self.xcoms, self.states, self.pushed = xcoms, states, {}

    def get_task_states(self, dag_id: str, task_ids: list[str], run_ids: list[str]) -> dict[str, Any]:
        return {"r1": {t: self.states.get(t) for t in task_ids}}

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        return self.xcoms.get(task_ids) if key == QUEUE_XCOM_KEY else None

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@pytest.mark.parametrize(
    ("xcoms", "states", "refused"),
    [
        ({}, {}, False),  # first start of the attempt
        ({"run_loader": "q-new"}, {"run_loader": "success"}, False),  # the loader was quick
        ({"run_loader": "q-old"}, {"run_loader": None}, False),  # cleared with us, not started yet
        ({"run_loader": "q-old"}, {"run_loader": "success"}, True),  # left over from attempt 1
        ({"await_outcome": "q-old"}, {"await_outcome": "failed"}, True),
    ],
)
def test_a_worker_refuses_to_run_without_its_siblings(
    xcoms: dict[str, str], states: dict[str, str], refused: bool
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    ti = FakeTI("run_sink", xcoms, states)
    if refused:
        with pytest.raises(AirflowFailException, match="Clear the whole DAG run, or `plan` with downstream"):
            claim_queue({"ti": ti}, "q-new")
        assert not ti.pushed
    else:
        claim_queue({"ti": ti}, "q-new")
        assert ti.pushed == {QUEUE_XCOM_KEY: "q-new"}


def test_a_local_worker_never_runs_twice_for_one_queue(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A worker task cleared without `plan` would reuse the queue id: the local runner refuses."""
    from airflow.sdk.exceptions import AirflowFailException

    from streamforge.orchestration.runners.local import STATE_DIR_ENV, LocalWorkerOperator

    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    op = LocalWorkerOperator(
        task_id="run_sink",
        role="sink",
        component="arango-candles",
        module="x",
        args=[],
        env={},
        static_env={},
        kafka_conn_id="k",
        arango_conn_id=None,
        deadline="2026-01-01T00:00:00Z",
        queue_id="wf-q-abc123",
    )
    state = tmp_path / "wf-q-abc123" / "sink"
    state.mkdir(parents=True)
    (state / "owner").write_text("r1 try 1 ti ti-1")
    ti = FakeTI("run_sink", {}, {})
    with pytest.raises(AirflowFailException, match="already ran for this plan"):
        op.poke({"ti": ti})
