"""The pipeline catalog (dags/streamforge_catalog.yaml): what DAGs exist and how they run.

`defaults` holds every setting; each `pipelines` entry expands to symbols x types DAGs and may
override any default (deep-merged). Everything is validated with pydantic (extra=forbid), and a
problem is reported with the entry's name and the field's path, e.g.

    pipeline 'majors-candles' (pipelines[0]): overrides.run.timeout_minutes: Input should be ...

This module imports no Airflow: the CLI (`streamforge catalog validate FILE`) stays fast, and
the DAG file reads the YAML once per process (`load_catalog` is cached) - the only I/O at parse.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from streamforge.contracts.config import DataTypeName, LoaderSource, Symbol
from streamforge.contracts.gaps import GapPolicy
from streamforge.contracts.names import Component, DataType, Layout, dag_id

CATALOG_ENV = "STREAMFORGE_CATALOG"
RUNNER_ENV = "STREAMFORGE_RUNNER"
DEFAULT_CATALOG_NAME = "streamforge_catalog.yaml"

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CONN_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


class CatalogError(ValueError):
    """The catalog cannot be used; the message lists every problem, one per line."""


class Runner(StrEnum):
    KUBERNETES = "kubernetes"
    LOCAL = "local"


class Role(StrEnum):
    """The two workers of a run. The sink's component follows the data type."""

    LOADER = "loader"
    SINK = "sink"


class SensorMode(StrEnum):
    """How a run's waiting tasks wait: the outcome sensor, and the workers of the local runner.

    auto = deferrable with the kubernetes runner; reschedule with the local runner, whose
    workers are child processes of task slots (and dag.test runs tasks one at a time, so a
    sensor deferred in-line before the workers start would wait forever). poke keeps each
    waiting task's process and slot and checks every poke interval: no re-queue per check, so
    none of Airflow 3.3's stale-executor-event races (apache/airflow#71172) and no process start
    per check, which is what many concurrent runs under a scheduler need (not for dag.test).
    """

    AUTO = "auto"
    DEFERRABLE = "deferrable"
    RESCHEDULE = "reschedule"
    POKE = "poke"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


K8sName = Annotated[str, Field(pattern=_K8S_NAME.pattern, max_length=253)]
ConnId = Annotated[str, Field(pattern=_CONN_ID.pattern, max_length=250)]
Url = Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")]


class Image(_Strict):
    repository: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9._/:-]*$")
    tag: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


ResourceName = Literal["cpu", "memory", "ephemeral-storage"]


class Resources(_Strict):
    requests: dict[ResourceName, str] = Field(default_factory=dict)
    limits: dict[ResourceName, str] = Field(default_factory=dict)

    @field_validator("requests", "limits")
    @classmethod
    def _quantities(cls, value: dict[str, str]) -> dict[str, str]:
        for name, quantity in value.items():
            if not _QUANTITY.match(str(quantity)):
                raise ValueError(f"{name}: {quantity!r} is not a Kubernetes quantity (e.g. 250m, 512Mi)")
        return value


class CredentialRefs(_Strict):
    """Worker credentials: env var -> key of one Secret, always mounted via secretKeyRef."""

    secret: K8sName
    keys: dict[Literal["KAFKA_USER", "KAFKA_PASSWORD", "ARANGO_USER", "ARANGO_PASSWORD"], str]


class KafkaCa(_Strict):
    config_map: K8sName
    key: str = Field(min_length=1)
    mount_path: str = Field(pattern=r"^/[^\s]*[^/]$")

    @property
    def mount_dir(self) -> str:
        return self.mount_path.rsplit("/", 1)[0]

    @property
    def file_name(self) -> str:
        return self.mount_path.rsplit("/", 1)[1]


class KubernetesSettings(_Strict):
    namespace: K8sName = "stf"
    service_account: K8sName
    node_selector: dict[str, str] = Field(default_factory=dict)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    env_config_map: K8sName
    credentials: CredentialRefs
    kafka_ca: KafkaCa
    run_as_user: int = Field(default=1001, ge=1)
    startup_timeout_seconds: int = Field(default=600, gt=0)
    # delete_pod: logs are streamed into the task log and pod events are logged on failure,
    # so a finished pod holds nothing we need (see the factory's notes).
    on_finish_action: Literal["delete_pod", "delete_succeeded_pod", "keep_pod"] = "delete_pod"
    kubernetes_conn_id: ConnId | None = None
    tmp_size_limit: str = Field(default="1Gi", pattern=_QUANTITY.pattern)
    metrics_port: int = Field(default=8000, ge=1, le=65535)


class WorkerOverride(_Strict):
    """Run another component, module or arguments in a role (tests: a failing dummy-service)."""

    component: Component | None = None
    module: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    args: list[str] = Field(default_factory=list)


class Connections(_Strict):
    kafka: ConnId = "streamforge_kafka"
    arango: ConnId = "streamforge_arango"


class Topics(_Strict):
    events: str = Field(default="queue-events", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    control: str = Field(default="queue-control", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    data_partitions: int = Field(default=1, ge=1, le=64)
    # None: the broker's default.replication.factor (Kafka's CreateTopics with -1), so one
    # catalog works on a one-broker compose stack and on a production cluster alike.
    data_replication_factor: int | None = Field(default=None, ge=1, le=7)


class Binance(_Strict):
    api_url: Url = "https://api.binance.com"
    archive_url: Url = "https://data.binance.vision/data/spot"


class RunDefaults(_Strict):
    source: LoaderSource = LoaderSource.AUTO
    # An exchange gap (contracts/gaps.py): record it and succeed, or fail the run naming it.
    gaps: GapPolicy = GapPolicy.RECORD
    batch_size: int = Field(default=1000, gt=0, le=1000)
    timeout_minutes: int = Field(default=60, gt=0)
    # Upper bound of the `timeout_minutes` param (and the backstop timeout of worker tasks).
    max_timeout_minutes: int = Field(default=720, gt=0, le=7 * 24 * 60)

    @model_validator(mode="after")
    def _timeout_in_bounds(self) -> RunDefaults:
        if self.timeout_minutes > self.max_timeout_minutes:
            raise ValueError(
                f"timeout_minutes {self.timeout_minutes} exceeds max_timeout_minutes {self.max_timeout_minutes}"
            )
        return self


class Sensor(_Strict):
    mode: SensorMode = SensorMode.AUTO
    poke_interval_seconds: float = Field(default=10, gt=0, le=600)


class SlackWebhookTarget(_Strict):
    kind: Literal["slack_webhook"]
    conn_id: ConnId


class WebhookTarget(_Strict):
    """A generic JSON webhook: POST of the alert as JSON to the URL of an HTTP connection."""

    kind: Literal["webhook"]
    conn_id: ConnId


AlertTarget = Annotated[SlackWebhookTarget | WebhookTarget, Field(discriminator="kind")]


class Alerts(_Strict):
    targets: list[AlertTarget] = Field(default_factory=list)
    # A run still going this long after it was queued raises a deadline alert (None: none).
    run_deadline_minutes: int | None = Field(default=None, gt=0)


class HistoryWindow(StrEnum):
    DAY = "day"
    MONTH = "month"  # the factory also builds `{dag_id}__monthly`, one run per calendar month


class History(_Strict):
    """The history a pipeline keeps: coverage shows it, the sweeper loads what is missing."""

    since: date
    until: date | None = None  # inclusive; None: up to the last complete day
    window: HistoryWindow = HistoryWindow.DAY

    @model_validator(mode="after")
    def _ordered(self) -> History:
        if self.until is not None and self.until < self.since:
            raise ValueError(f"until {self.until} is before since {self.since}")
        return self


class PipelineSettings(_Strict):
    """Every setting of one DAG: the catalog's defaults deep-merged with an entry's overrides."""

    owner: str = Field(default="streamforge", min_length=1)
    runner: Runner = Runner.KUBERNETES
    schedule: str | None = "0 0 * * *"
    start_date: date
    max_active_runs: int = Field(default=4, ge=1, le=64)
    retries: int = Field(default=2, ge=0, le=10)
    retry_delay_minutes: float = Field(default=2, ge=0)
    collection_layout: Layout = Layout.DAILY
    # QUEUE_CREATED_AT = plan time minus this, so a worker or broker clock slightly behind
    # Airflow's still finds its first commands/events at or after that instant.
    clock_skew_seconds: int = Field(default=30, ge=0, le=3600)
    connections: Connections = Connections()
    topics: Topics = Topics()
    binance: Binance = Binance()
    run: RunDefaults = RunDefaults()
    sensor: Sensor = Sensor()
    images: dict[Component, Image]
    resources: dict[Component, Resources] = Field(default_factory=dict)
    workers: dict[Role, WorkerOverride] = Field(default_factory=dict)
    kubernetes: KubernetesSettings
    alerts: Alerts = Alerts()
    tags: list[str] = Field(default_factory=list)
    history: History | None = None

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (e.g. '0 0 * * *')")
        return value

    @property
    def window_cron(self) -> str:
        """The grid default windows are cut on: the schedule, or days for manual-only DAGs."""
        return self.schedule or "0 0 * * *"

    def component(self, role: Role, data_type: DataType) -> Component:
        override = self.workers.get(role)
        if override and override.component:
            return override.component
        return Component.LOADER if role is Role.LOADER else data_type.sink

    def module(self, role: Role, data_type: DataType) -> str:
        override = self.workers.get(role)
        return (override.module if override and override.module else None) or self.component(role, data_type).module

    def args(self, role: Role) -> list[str]:
        override = self.workers.get(role)
        return list(override.args) if override else []

    @property
    def effective_sensor_mode(self) -> SensorMode:
        if self.sensor.mode is not SensorMode.AUTO:
            return self.sensor.mode
        return SensorMode.DEFERRABLE if self.runner is Runner.KUBERNETES else SensorMode.RESCHEDULE

    @property
    def waiting_mode(self) -> str:
        """BaseSensorOperator `mode` of the tasks that wait without deferring (poke or reschedule)."""
        return "poke" if self.effective_sensor_mode is SensorMode.POKE else "reschedule"


class PipelineEntry(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=63)
    description: str = ""
    enabled: bool = True
    symbols: list[Symbol] = Field(min_length=1)
    types: list[DataTypeName] = Field(min_length=1)
    # Any subset of `defaults`, deep-merged over them; validated as PipelineSettings.
    overrides: dict[str, Any] = Field(default_factory=dict)


class DagSpec(_Strict):
    """One DAG of the catalog."""

    dag_id: str
    symbol: str
    data_type: str
    pipeline: str
    description: str
    settings: PipelineSettings
    # day: the pipeline's DAG; month: its `__monthly` DAG (orchestration/monthly.py)
    run_window: HistoryWindow = HistoryWindow.DAY

    @property
    def type(self) -> DataType:
        return DataType.parse(self.data_type)


class _CatalogFile(_Strict):
    version: Literal[1]
    defaults: dict[str, Any]
    pipelines: list[dict[str, Any]] = Field(min_length=1)


class Catalog(_Strict):
    path: str
    defaults: PipelineSettings
    dags: tuple[DagSpec, ...]

    def get(self, dag_id_: str) -> DagSpec:
        for spec in self.dags:
            if spec.dag_id == dag_id_:
                return spec
        raise KeyError(f"{dag_id_!r} is not in the catalog {self.path}")


# ---------------------------------------------------------------------------------------------


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else (lists included) in `override` replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _problems(exc: ValidationError, prefix: str) -> list[str]:
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{prefix}{path}: {message}" if path else f"{prefix}{message}")
    return lines


def _runner_from_env(environ: Mapping[str, str]) -> Runner | None:
    value = environ.get(RUNNER_ENV, "").strip()
    if not value:
        return None
    try:
        return Runner(value)
    except ValueError:
        raise CatalogError(f"{RUNNER_ENV}={value!r}: expected one of {', '.join(r.value for r in Runner)}") from None


def parse_catalog(data: Any, path: str = "<catalog>", environ: Mapping[str, str] | None = None) -> Catalog:
    """Validate a loaded catalog document; raises CatalogError listing every problem."""
    environ = os.environ if environ is None else environ
    runner = _runner_from_env(environ)
    try:
        doc = _CatalogFile.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(f"{path}: invalid catalog:\n  " + "\n  ".join(_problems(exc, ""))) from None

    problems: list[str] = []
    raw_defaults = dict(doc.defaults)
    if runner is not None:
        raw_defaults["runner"] = runner.value
    try:
        defaults = PipelineSettings.model_validate(raw_defaults)
    except ValidationError as exc:
        raise CatalogError(f"{path}: invalid catalog:\n  " + "\n  ".join(_problems(exc, "defaults."))) from None

    specs: list[DagSpec] = []
    owners: dict[str, str] = {}
    names: set[str] = set()
    for index, raw in enumerate(doc.pipelines):
        label = f"pipeline {raw.get('name')!r} (pipelines[{index}])" if isinstance(raw, dict) else f"pipelines[{index}]"
        try:
            entry = PipelineEntry.model_validate(raw)
        except ValidationError as exc:
            problems += _problems(exc, f"{label}: ")
            continue
        if entry.name in names:
            problems.append(f"{label}: name: duplicate pipeline name {entry.name!r}")
        names.add(entry.name)
        overrides = dict(entry.overrides)
        if runner is not None:
            overrides["runner"] = runner.value
        try:
            settings = PipelineSettings.model_validate(deep_merge(raw_defaults, overrides))
        except ValidationError as exc:
            problems += _problems(exc, f"{label}: overrides.")
            continue
        if not entry.enabled:
            continue
        for symbol in entry.symbols:
            for type_name in entry.types:
                data_type = DataType.parse(type_name)
                missing = {settings.component(role, data_type) for role in Role} - set(settings.images)
                if missing:
                    problems.append(
                        f"{label}: images: no image for {', '.join(sorted(c.value for c in missing))} "
                        f"(needed by {type_name})"
                    )
                    continue
                spec_id = dag_id(symbol, type_name)
                if spec_id in owners:
                    problems.append(f"{label}: {spec_id} is already defined by pipeline {owners[spec_id]!r}")
                    continue
                owners[spec_id] = entry.name
                spec = DagSpec(
                    dag_id=spec_id,
                    symbol=symbol,
                    data_type=type_name,
                    pipeline=entry.name,
                    description=entry.description,
                    settings=settings,
                )
                specs.append(spec)
                if settings.history is not None and settings.history.window is HistoryWindow.MONTH:
                    from streamforge.orchestration.monthly import monthly_spec  # it builds on this module

                    specs.append(monthly_spec(spec))
    if problems:
        raise CatalogError(f"{path}: invalid catalog:\n  " + "\n  ".join(problems))
    return Catalog(path=path, defaults=defaults, dags=tuple(specs))


def read_catalog(path: str | Path, environ: Mapping[str, str] | None = None) -> Catalog:
    """Read and validate a catalog file (uncached)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read the catalog: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from None
    return parse_catalog(data, str(path), environ)


def catalog_path(default: str | Path) -> Path:
    """$STREAMFORGE_CATALOG if set, else `default` (the file next to the DAG file)."""
    override = os.environ.get(CATALOG_ENV, "").strip()
    return Path(override) if override else Path(default)


@lru_cache(maxsize=8)
def _cached(path: str, runner: str) -> Catalog:
    return read_catalog(path, {RUNNER_ENV: runner})


def load_catalog(default: str | Path) -> Catalog:
    """The catalog for this process, read once per (path, STREAMFORGE_RUNNER)."""
    path = os.path.abspath(catalog_path(default))  # no filesystem access: parsing does no I/O but the read
    return _cached(path, os.environ.get(RUNNER_ENV, ""))


load_catalog.cache_clear = _cached.cache_clear  # type: ignore[attr-defined]
