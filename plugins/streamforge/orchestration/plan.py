"""`plan`: a run attempt's identity and settings, computed once and pushed as one small XCom.

Pure (no Airflow, no I/O): the task in the DAG only gathers its inputs (run id, plan's try
number, logical date, params, now, two env overrides) and calls `make_plan`. Nothing secret
is in a plan: credentials reach workers via secretKeyRef (kubernetes) or are injected by the
local runner at execute time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streamforge.contracts.config import LoaderSettings, LoaderSource, SinkSettings, TimeRange, per_run_env
from streamforge.contracts.gaps import GapPolicy
from streamforge.contracts.names import Layout, RunNames, WindowPart, h6, routes_per_day, window_collections
from streamforge.orchestration.catalog import DagSpec, Role
from streamforge.orchestration.monthly import window_limit
from streamforge.orchestration.window import WindowError, default_window, resolve_window

# The run-specific env of each role, derived from the workers' settings models (the fields
# marked PER_RUN; everything else is cluster configuration: ConfigMap and Secret in Kubernetes,
# the Airflow connections in local runs). The runners template exactly these keys from the plan XCom.
ROLE_SETTINGS: dict[Role, type[LoaderSettings] | type[SinkSettings]] = {
    Role.LOADER: LoaderSettings,
    Role.SINK: SinkSettings,
}
ROLE_ENV_KEYS: dict[Role, tuple[str, ...]] = {role: per_run_env(model) for role, model in ROLE_SETTINGS.items()}


class PlanError(ValueError):
    """The run cannot start as requested; the message says what to fix."""


class RunParams(BaseModel):
    """The DAG params after Airflow's JSON-schema check; cross-field rules live in `make_plan`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str | None = None
    end: str | None = None
    source: LoaderSource
    gaps: GapPolicy = GapPolicy.RECORD
    batch_size: int = Field(gt=0, le=1000)
    partitions: int = Field(ge=1, le=64)
    timeout_minutes: int = Field(gt=0)


class RunPlan(BaseModel):
    """The `plan` XCom (JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dag_id: str
    run_id: str
    attempt: int
    symbol: str
    data_type: str
    layout: Layout
    h6: str
    queue_id: str
    data_topic: str
    collection: str  # the window's one collection; with `per_day`, its first day's
    # Each record in its own day's collection (names.routes_per_day): the sink gets no COLLECTION_NAME.
    per_day: bool = False
    window_start: datetime
    window_end: datetime
    time_range: str
    created_at: datetime
    deadline: datetime
    source: LoaderSource
    gaps: GapPolicy = GapPolicy.RECORD
    batch_size: int
    partitions: int
    replication_factor: int | None  # None: the broker's default
    timeout_minutes: int
    events_topic: str
    control_topic: str
    components: dict[Role, str]
    producers: dict[Role, str]
    pods: dict[Role, str]
    env: dict[Role, dict[str, str]]
    # Listing boundary (orchestration/listing.py): skip the window, or a note on where it starts.
    skip_reason: str | None = None
    listing_note: str | None = None

    @property
    def created_at_ms(self) -> int:
        return int(self.created_at.timestamp() * 1000)

    @property
    def parts(self) -> list[WindowPart]:
        """The collections the window's documents land in, each with its part of the window."""
        if not self.per_day:
            return [WindowPart(self.collection, self.window_start, self.window_end)]
        return window_collections(self.symbol, self.data_type, self.window_start, self.window_end, self.layout)

    def xcom(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_xcom(cls, value: Mapping[str, Any] | None) -> RunPlan:
        if not value:
            raise PlanError("no plan: the `plan` task has not produced one for this run attempt")
        return cls.model_validate(dict(value))


def with_listing(plan: RunPlan, start_ms: int, skip_reason: str | None, note: str | None) -> RunPlan:
    """The plan after the listing boundary: skipped, or loading from `start_ms` (names unchanged)."""
    if skip_reason is not None:
        return plan.model_copy(update={"skip_reason": skip_reason})
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    if start <= plan.window_start:
        return plan.model_copy(update={"listing_note": note}) if note else plan
    time_range = TimeRange(start=start, end=plan.window_end).iso()
    env = {role: {**values, "TIME_RANGE": time_range} for role, values in plan.env.items()}
    return plan.model_copy(update={"window_start": start, "time_range": time_range, "env": env, "listing_note": note})


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def make_plan(
    spec: DagSpec,
    *,
    run_id: str,
    attempt: int,
    logical_date: datetime | None,
    run_after: datetime,
    params: Mapping[str, Any],
    now: datetime,
    binance_api_url: str | None = None,
    binance_archive_url: str | None = None,
) -> RunPlan:
    """Everything a run attempt needs, or PlanError before anything is created."""
    settings = spec.settings
    try:
        p = RunParams.model_validate(dict(params))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors())
        raise PlanError(f"params: {problems} (allowed: {', '.join(RunParams.model_fields)})") from None
    if p.timeout_minutes > settings.run.max_timeout_minutes:
        raise PlanError(
            f"params: timeout_minutes {p.timeout_minutes} exceeds the catalog's max_timeout_minutes "
            f"{settings.run.max_timeout_minutes}: lower it"
        )
    try:
        window = resolve_window(
            p.start,
            p.end,
            default_window(settings.window_cron, logical_date, run_after),
            spec.type,
            now,
            window_limit(spec),
        )
    except WindowError as exc:
        raise PlanError(str(exc)) from None

    names = RunNames(
        spec.symbol, spec.data_type, window.start, h6(spec.dag_id, run_id, attempt), settings.collection_layout
    )
    per_day = routes_per_day(window.start, window.end, settings.collection_layout)
    created_at = (now - timedelta(seconds=settings.clock_skew_seconds)).astimezone(UTC)
    components = {role: settings.component(role, spec.type).value for role in Role}
    workers = names.worker_ids(components)  # role -> (telemetry producer id, pod name)
    producers = {role: workers[role][0] for role in Role}
    common = {
        "QUEUE_ID": names.queue_id,
        "SYMBOL": names.symbol,
        "TYPE": spec.data_type,
        "TIME_RANGE": window.iso(),
        "KAFKA_TOPIC": names.data_topic,
        "QUEUE_CREATED_AT": _iso(created_at),
        "BATCH_SIZE": str(p.batch_size),
    }
    env = {
        Role.LOADER: common
        | {
            "TELEMETRY_PRODUCER_ID": producers[Role.LOADER],
            "LOADER_SOURCE": p.source.value,
            "GAPS": p.gaps.value,
            "BINANCE_API_URL": binance_api_url or settings.binance.api_url,
            "BINANCE_ARCHIVE_URL": binance_archive_url or settings.binance.archive_url,
        },
        Role.SINK: common
        | {
            "TELEMETRY_PRODUCER_ID": producers[Role.SINK],
            "COLLECTION_NAME": "" if per_day else names.collection,
            "COLLECTION_LAYOUT": settings.collection_layout.value,
        },
    }
    env = {role: {key: env[role][key] for key in ROLE_ENV_KEYS[role]} for role in Role}
    return RunPlan(
        dag_id=spec.dag_id,
        run_id=run_id,
        attempt=attempt,
        symbol=names.symbol,
        data_type=spec.data_type,
        layout=settings.collection_layout,
        h6=names.h6,
        queue_id=names.queue_id,
        data_topic=names.data_topic,
        collection=names.collection,
        per_day=per_day,
        window_start=window.start,
        window_end=window.end,
        time_range=window.iso(),
        created_at=created_at,
        deadline=now + timedelta(minutes=p.timeout_minutes),
        source=p.source,
        gaps=p.gaps,
        batch_size=p.batch_size,
        partitions=p.partitions,
        replication_factor=settings.topics.data_replication_factor,
        timeout_minutes=p.timeout_minutes,
        events_topic=settings.topics.events,
        control_topic=settings.topics.control,
        components=components,
        producers=producers,
        pods={role: workers[role][1] for role in Role},
        env=env,
    )
