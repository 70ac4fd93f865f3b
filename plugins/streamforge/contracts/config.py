"""Worker configuration from the environment (ARCHITECTURE §5), parsed once with pydantic-settings.

Each component has one settings class; the env variable of a field is its name in upper
case. `load_settings` turns any problem into one message naming the variable and exit code 2.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, NoReturn, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from streamforge.contracts.gaps import GapPolicy
from streamforge.contracts.names import Component, DataType, InvalidName, Layout, validate_symbol

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 3

_SEED_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2}):(\d{4}-\d{2}-\d{2})$")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse_instant(text: str, side: str) -> datetime:
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        return _utc(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(
            f"{side} {text!r} is not an ISO-8601 date or date-time (e.g. 2024-08-01 or 2024-08-01T00:00:00Z)"
        ) from None


class TimeRange(BaseModel):
    """A half-open UTC window [start, end)."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        if self.end <= self.start:
            raise ValueError(f"end {self.end.isoformat()} must be after start {self.start.isoformat()}")
        return self

    @classmethod
    def parse(cls, value: Any) -> Any:
        """ISO `start/end` (half-open) or the seed form `YYYY-MM-DD:YYYY-MM-DD` (both days inclusive)."""
        if not isinstance(value, str):
            return value
        if match := _SEED_RANGE.match(value.strip()):
            first, last = (_parse_instant(g, side) for g, side in zip(match.groups(), ("start", "end"), strict=True))
            return {"start": first, "end": last + timedelta(days=1)}
        if value.count("/") != 1:
            raise ValueError(
                f"{value!r} is neither ISO-8601 'start/end' (e.g. 2024-08-01/2024-08-02) nor 'YYYY-MM-DD:YYYY-MM-DD'"
            )
        start, end = value.split("/")
        return {"start": _parse_instant(start, "start"), "end": _parse_instant(end, "end")}

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)

    def iso(self) -> str:
        return f"{self.start.isoformat().replace('+00:00', 'Z')}/{self.end.isoformat().replace('+00:00', 'Z')}"


TimeRangeEnv = Annotated[TimeRange, NoDecode, BeforeValidator(TimeRange.parse)]


def _check_type(value: str) -> str:
    try:
        return DataType.parse(value).name
    except InvalidName as exc:
        raise ValueError(str(exc)) from None


def _check_symbol(value: str) -> str:
    try:
        return validate_symbol(value)
    except InvalidName as exc:
        raise ValueError(str(exc)) from None


DataTypeName = Annotated[str, AfterValidator(_check_type)]
Symbol = Annotated[str, AfterValidator(_check_symbol)]


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class LoaderSource(StrEnum):
    AUTO = "auto"
    REST = "rest"
    ARCHIVE = "archive"


class _PerRun:
    """Marks a settings field whose value the DAG's `plan` renders for each run attempt; every
    other field is deployment configuration (ConfigMap/Secret, or the Airflow connections)."""

    def __repr__(self) -> str:
        return "PER_RUN"


PER_RUN = _PerRun()  # use as Annotated[type, PER_RUN]


def per_run_env(model: type[BaseSettings]) -> tuple[str, ...]:
    """The env variables `plan` renders for a worker of `model` (ARCHITECTURE §5)."""
    return tuple(name.upper() for name, field in model.model_fields.items() if PER_RUN in field.metadata)


def env_names(*models: type[BaseSettings]) -> frozenset[str]:
    """Every env variable the models read (upper case)."""
    return frozenset(name.upper() for model in models for name in model.model_fields)


class _Env(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, frozen=True)


class KafkaEnv(_Env):
    """How to reach Kafka; shared by every component and by the Airflow connection."""

    kafka_bootstrap_servers: str = Field(min_length=1)
    kafka_security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    kafka_sasl_mechanism: SaslMechanism = SaslMechanism.SCRAM_SHA_512
    kafka_user: str | None = None
    kafka_password: SecretStr | None = None
    kafka_ca_path: str | None = None
    queue_control_topic: str = "queue-control"
    queue_events_topic: str = "queue-events"

    @model_validator(mode="after")
    def _credentials_match_protocol(self) -> Self:
        sasl = self.kafka_security_protocol in (SecurityProtocol.SASL_SSL, SecurityProtocol.SASL_PLAINTEXT)
        if sasl and not (self.kafka_user and self.kafka_password and self.kafka_password.get_secret_value()):
            raise ValueError(
                f"KAFKA_USER and KAFKA_PASSWORD are required with KAFKA_SECURITY_PROTOCOL="
                f"{self.kafka_security_protocol.value}"
            )
        if self.kafka_ca_path and not os.path.isfile(self.kafka_ca_path):
            raise ValueError(f"KAFKA_CA_PATH {self.kafka_ca_path!r} is not a readable file")
        return self

    def kafka_config(self) -> dict[str, str]:
        """confluent-kafka (librdkafka) client settings for this environment."""
        return kafka_client_config(
            self.kafka_bootstrap_servers,
            self.kafka_security_protocol,
            self.kafka_sasl_mechanism,
            self.kafka_user,
            self.kafka_password.get_secret_value() if self.kafka_password else None,
            self.kafka_ca_path,
        )


def kafka_client_config(
    bootstrap: str,
    protocol: SecurityProtocol | str = SecurityProtocol.PLAINTEXT,
    mechanism: SaslMechanism | str = SaslMechanism.SCRAM_SHA_512,
    user: str | None = None,
    password: str | None = None,
    ca_path: str | None = None,
) -> dict[str, str]:
    """One builder for every Kafka client (workers, sensor, topic admin)."""
    protocol = SecurityProtocol(protocol)
    config = {"bootstrap.servers": bootstrap, "security.protocol": protocol.value}
    if protocol in (SecurityProtocol.SASL_SSL, SecurityProtocol.SASL_PLAINTEXT):
        if not (user and password):
            raise ValueError(f"{protocol.value} needs a user and a password")
        config |= {
            "sasl.mechanism": SaslMechanism(mechanism).value,
            "sasl.username": user,
            "sasl.password": password,
        }
    if protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL) and ca_path:
        config["ssl.ca.location"] = ca_path
    return config


class RunEnv(KafkaEnv):
    """Identity of the run a worker belongs to (rendered by the DAG's `plan`)."""

    queue_id: Annotated[str, PER_RUN] = Field(min_length=1)
    symbol: Annotated[Symbol, PER_RUN]
    type: Annotated[str, PER_RUN]
    telemetry_producer_id: Annotated[str, PER_RUN] = Field(min_length=1)
    # Workers read queue-control from the offsets at this instant, so no earlier command is lost.
    queue_created_at: Annotated[datetime, PER_RUN]
    log_level: str = "INFO"
    metrics_port: int = Field(default=8000, ge=0, le=65535)

    @field_validator("queue_created_at", mode="after")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return _utc(value)

    @property
    def queue_created_at_ms(self) -> int:
        return int(self.queue_created_at.timestamp() * 1000)


class LoaderSettings(RunEnv):
    type: Annotated[DataTypeName, PER_RUN]
    time_range: Annotated[TimeRangeEnv, PER_RUN]
    kafka_topic: Annotated[str, PER_RUN] = Field(min_length=1)
    loader_source: Annotated[LoaderSource, PER_RUN] = LoaderSource.AUTO
    binance_api_url: Annotated[str, PER_RUN] = "https://api.binance.com"
    # Base of the archive layout, market included: …/data/spot or …/data/futures/cm
    binance_archive_url: Annotated[str, PER_RUN] = "https://data.binance.vision/data/spot"
    # Share of Binance's 6000/min request weight this loader may use.
    binance_weight_budget: int = Field(default=3000, gt=0, le=6000)
    # Longest Retry-After (429/418) the loader will sit out before failing.
    binance_max_wait_seconds: float = Field(default=300, ge=0)
    batch_size: Annotated[int, PER_RUN] = Field(default=1000, gt=0, le=1000)
    # What an exchange gap does to the run (contracts/gaps.py): record it and succeed, or fail.
    gaps: Annotated[GapPolicy, PER_RUN] = GapPolicy.RECORD

    @model_validator(mode="after")
    def _window_fits_the_type(self) -> Self:
        # The backstop of plan's per-DAG rule (a day of trades per daily run, a month per monthly run).
        limit = DataType.parse(self.type).max_run_window
        if self.time_range.end - self.time_range.start > limit:
            raise ValueError(
                f"TIME_RANGE {self.time_range.iso()} is longer than the {_days(limit)} one {self.type} run may load; "
                "split it into several runs"
            )
        return self


def _days(span: timedelta) -> str:
    days = span / timedelta(days=1)
    return f"{days:g} day" + ("" if days == 1 else "s")


class SinkSettings(RunEnv):
    type: Annotated[DataTypeName, PER_RUN]
    kafka_topic: Annotated[str, PER_RUN] = Field(min_length=1)
    # Unset (or empty) with the daily layout: every record goes to its own day's collection
    # (names.routes_per_day: windows longer than a day), which must lie inside TIME_RANGE.
    collection_name: Annotated[str | None, PER_RUN] = None
    collection_layout: Annotated[Layout, PER_RUN] = Layout.DAILY
    time_range: Annotated[TimeRangeEnv | None, PER_RUN] = None
    arango_url: str = Field(min_length=1)
    arango_db: str = "streamforge"
    arango_user: str = "root"
    arango_password: SecretStr = SecretStr("")
    # Documents per ArangoDB import: the deployment's setting, not the run's (the run's BATCH_SIZE
    # is the loader's Binance page, at most 1000). Larger imports cost less CPU per document
    # (bench/README.md: 1.5x records per CPU-second at 5000 than at 1000).
    arango_batch_size: int = Field(default=5000, gt=0, le=100_000)
    batch_max_latency_ms: int = Field(default=500, gt=0)
    # Store batch N on a background thread while N+1 is read and decoded. Off by default: with the
    # server on the same cores it cost ~20 % more CPU per record (GIL hand-offs) for no throughput;
    # it pays off when a remote ArangoDB's import time is what the sink waits for.
    arango_write_overlap: bool = False
    # While ArangoDB is unreachable (refused, timeout, 5xx) a request is retried with
    # exponential backoff (ARANGO_RETRY_WAIT_SECONDS, doubled each time, capped at 8 s) up to
    # ARANGO_RETRY_ATTEMPTS tries — about 25 s by default — then the sink fails.
    arango_retry_attempts: int = Field(default=6, ge=1, le=100)
    arango_retry_wait_seconds: float = Field(default=1.0, gt=0, le=60)
    arango_timeout_seconds: float = Field(default=30, gt=0, le=600)

    @field_validator("collection_name", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _collection_or_day_routing(self) -> Self:
        if self.collection_name is None:
            if self.collection_layout is not Layout.DAILY:
                raise ValueError(f"COLLECTION_NAME is required with COLLECTION_LAYOUT={self.collection_layout.value}")
            if self.time_range is None:
                raise ValueError(
                    "COLLECTION_NAME or TIME_RANGE is required: without a collection, records go to "
                    "their day's collection, which must lie inside TIME_RANGE"
                )
        return self

    @property
    def data_type(self) -> DataType:
        return DataType.parse(self.type)

    @property
    def component(self) -> Component:
        return self.data_type.sink


class DummySettings(RunEnv):
    type: str = "dummy"
    symbol: Symbol = "BTCUSDT"
    telemetry_producer_id: str = "dummy-service"


Settings = TypeVar("Settings", bound=BaseSettings)


def format_errors(exc: ValidationError) -> str:
    """One line per problem, naming the environment variable."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message += " (environment variable not set)"
        # Whole-model checks name their variables in the message itself.
        lines.append(f"{loc[0].upper()}: {message}" if loc else message)
    return "; ".join(lines)


def load_settings(cls: type[Settings], environ: Mapping[str, str] | None = None) -> Settings:
    """Parse `cls` from the environment (or `environ`) or exit 2 naming the bad variable."""
    try:
        if environ is None:
            return cls()
        return cls.model_validate({k.lower(): v for k, v in environ.items()})
    except ValidationError as exc:
        _exit_config(f"configuration error: {format_errors(exc)}")


def _exit_config(message: str) -> NoReturn:
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIG)
