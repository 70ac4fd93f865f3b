"""The DAG params (trigger form and REST `conf`), JSON-schema validated by Airflow at trigger.

Only single-field rules live here (formats, enums, bounds); the rules across fields (end after
start, not in the future, window size per data type) need the run's logical date and the
clock, so `plan` checks them (plan.make_plan) before anything is created.
"""

from __future__ import annotations

from airflow.sdk import Param

from streamforge.contracts.gaps import GapPolicy
from streamforge.orchestration.catalog import DagSpec

_DATE_OR_DATETIME = [{"type": "null"}, {"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]
TUNING = "Tuning"  # a collapsed section of the trigger form (Airflow has its own "Advanced Options")
SOURCE_LABELS = {
    "auto": "Auto: the daily archive for complete days, the REST API for the rest",
    "rest": "Binance REST API",
    "archive": "data.binance.vision daily archive",
}
_WINDOW_HELP = (
    "ISO date (2024-08-01) or RFC 3339 date-time (2024-08-01T06:00:00Z), UTC. Leave start and end "
    "empty to load the run's day: its data interval (a manual run: the day of its logical date)."
)


def _window_param(title: str) -> Param:
    """A nullable date or date-time, shown as the trigger form's date/time picker.

    The form picks its widget from the top-level `type` and `format` (date-time: a calendar
    plus an optional time; empty = null). Validation must accept a plain date too, so the
    schema is a JSON Schema draft-07 `$ref`, whose sibling keywords (`type`, `format`) the
    validator ignores by that draft's rule: the referenced anyOf alone decides (date-time is
    really checked: rfc3339-validator is installed).
    """
    return Param(
        None,
        title=title,
        description=_WINDOW_HELP,
        type=["null", "string"],
        format="date-time",
        **{"$schema": "http://json-schema.org/draft-07/schema#", "$ref": "#/definitions/window"},
        definitions={"window": {"anyOf": _DATE_OR_DATETIME}},
    )


def dag_params(spec: DagSpec) -> dict[str, Param]:
    run = spec.settings.run
    return {
        "start": _window_param("Window start (inclusive)"),
        "end": _window_param("Window end (exclusive)"),
        "source": Param(
            run.source.value,
            type="string",
            enum=list(SOURCE_LABELS),
            values_display=SOURCE_LABELS,
            title="Source",
            description="auto: the daily archive for complete days, REST for the rest",
        ),
        "gaps": Param(
            run.gaps.value,
            type="string",
            enum=[p.value for p in GapPolicy],
            title="Exchange gaps",
            description=(
                "record: load around ranges the exchange has no data for, record them (run note, verify report, "
                "gap ledger) and succeed; fail: fail the run naming every missing range"
            ),
        ),
        "batch_size": Param(
            run.batch_size,
            type="integer",
            minimum=1,
            maximum=1000,
            title="Batch size",
            description="records per Binance request / Kafka batch",
            section=TUNING,
        ),
        "partitions": Param(
            spec.settings.topics.data_partitions,
            type="integer",
            minimum=1,
            maximum=64,
            title="Data topic partitions",
            description="partitions of this run's data topic (more: more sink consumers)",
            section=TUNING,
        ),
        "timeout_minutes": Param(
            run.timeout_minutes,
            type="integer",
            minimum=1,
            maximum=run.max_timeout_minutes,
            title="Timeout (minutes)",
            description="the workers must have finished this long after `plan`",
            section=TUNING,
        ),
    }
