"""`await_outcome`: decides a run's success from its workers' events (ARCHITECTURE §3).

Deferrable (production): defers to QueueOutcomeTrigger, which holds one consumer in the
triggerer until the outcome or the plan's deadline. Reschedule (local runner): each poke reads
the queue from QUEUE_CREATED_AT to the end and applies the same rule, freeing the slot in
between; this also keeps `dag.test`, which runs tasks one at a time, from waiting in-line for
workers it has not started yet. Poke (catalog `sensor.mode: poke`): the same pokes in one
process that keeps its slot (catalog.SensorMode says when that is the better choice).

The outcome is pushed as XCom `outcome` in every case (alerts and `send_stop` quote it) and
returned (XCom `return_value`) on success; any failure fails the task with its message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException

from streamforge.orchestration.catalog import Role
from streamforge.orchestration.guards import claim_queue
from streamforge.orchestration.outcome import Outcome, OutcomeTracker
from streamforge.orchestration.plan import RunPlan
from streamforge.orchestration.queue_reader import QueueReader, QueueReaderError
from streamforge.orchestration.trigger import QueueOutcomeTrigger, apply_messages, reader_failure

OUTCOME_XCOM_KEY = "outcome"
# Airflow's own timeouts only back up the plan's deadline, which the trigger/poke enforce.
_BACKSTOP = timedelta(minutes=15)


class QueueOutcomeSensor(BaseSensorOperator):
    template_fields = ("plan",)
    ui_color = "#ffefeb"

    def __init__(
        self,
        *,
        plan: Any,
        kafka_config_id: str,
        deferrable: bool = True,
        max_timeout_minutes: int = 720,
        **kwargs: Any,
    ) -> None:
        if deferrable:
            kwargs.pop("mode", None)
        else:
            kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("timeout", (timedelta(minutes=max_timeout_minutes) + _BACKSTOP).total_seconds())
        super().__init__(**kwargs)
        self.plan = plan
        self.kafka_config_id = kafka_config_id
        self.deferrable = deferrable

    def _plan(self) -> RunPlan:
        return RunPlan.from_xcom(self.plan if isinstance(self.plan, Mapping) else None)

    def execute(self, context: Context) -> Any:
        plan = self._plan()
        claim_queue(context, plan.queue_id)
        if not self.deferrable:
            return super().execute(context)
        remaining = plan.deadline - datetime.now(UTC)
        self.log.info("waiting for the outcome of %s until %s", plan.queue_id, plan.deadline.isoformat())
        self.defer(
            trigger=QueueOutcomeTrigger(
                kafka_config_id=self.kafka_config_id,
                queue_id=plan.queue_id,
                events_topic=plan.events_topic,
                control_topic=plan.control_topic,
                loader_producer=plan.producers[Role.LOADER],
                sink_producer=plan.producers[Role.SINK],
                since_ms=plan.created_at_ms,
                deadline=plan.deadline.isoformat(),
            ),
            method_name="execute_complete",
            timeout=max(remaining, timedelta(0)) + _BACKSTOP,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        return self._finish(context, Outcome.model_validate(event))

    def poke(self, context: Context) -> PokeReturnValue | bool:
        plan = self._plan()
        tracker = OutcomeTracker(plan.queue_id, plan.producers[Role.LOADER], plan.producers[Role.SINK])
        try:
            with QueueReader(
                self.kafka_config_id, plan.queue_id, [plan.events_topic, plan.control_topic], plan.created_at_ms
            ) as reader:
                outcome = apply_messages(tracker, reader.read_to_end(), plan.events_topic)
        except QueueReaderError as exc:
            outcome = reader_failure(plan.queue_id, exc)
        if outcome is None and datetime.now(UTC) >= plan.deadline:
            outcome = tracker.expire(plan.deadline)
        if outcome is None:
            seen = ", ".join(f"{p}={s}" for p, s in sorted(tracker.producers.items())) or "no events yet"
            self.log.info("no outcome yet for %s (%s)", plan.queue_id, seen)
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, outcome))

    def _finish(self, context: Context, outcome: Outcome) -> dict[str, Any]:
        value = outcome.model_dump(mode="json")
        context["ti"].xcom_push(key=OUTCOME_XCOM_KEY, value=value)
        self.log.info(
            "outcome of %s: %s (%s); loader=%s sink=%s",
            outcome.queue_id,
            "success" if outcome.success else "FAILURE",
            outcome.reason.value,
            outcome.loader_records,
            outcome.sink_records,
        )
        if not outcome.success:
            raise AirflowFailException(f"{outcome.queue_id}: {outcome.message}")
        return value
