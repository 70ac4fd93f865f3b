"""The two Airflow connections and how they map to worker settings.

`streamforge_kafka` (conn_type `kafka`, the Kafka provider's format): every librdkafka setting
in `extra`; StreamForge reads these keys (others are passed through to Airflow-side clients):

    {"conn_type": "kafka", "extra": {"bootstrap.servers": "kafka-bootstrap.kafka:9093",
      "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
      "sasl.username": "streamforge-airflow", "sasl.password": "...",
      "ssl.ca.location": "/etc/streamforge/kafka-ca/ca.crt"}}

`streamforge_arango` (conn_type `generic` or `http`): host, port, login, password, schema =
database, extra {"protocol": "http" | "https"}:

    {"conn_type": "generic", "host": "arangodb.arangodb", "port": 8529, "login": "streamforge",
      "password": "...", "schema": "streamforge", "extra": {"protocol": "https"}}

`worker_env` is the ONE place connection fields become worker env (KAFKA_*, ARANGO_*); the
local runner calls it at execute time only, so credentials never reach a rendered template
field, a log line or an XCom. Kubernetes pods get the same variables from the worker
ConfigMap and Secret instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streamforge.contracts.config import KafkaEnv, SaslMechanism, SecurityProtocol, format_errors


class ConnectionLike(Protocol):
    """What we read of an Airflow Connection (airflow.sdk.Connection satisfies it)."""

    conn_id: str
    host: str | None
    port: int | None
    login: str | None
    password: str | None
    schema: str | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


class ConnectionSettingsError(ValueError):
    """A connection lacks something StreamForge needs; the message names it."""


class KafkaExtra(BaseModel):
    """The librdkafka keys StreamForge maps; other keys are allowed and kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    bootstrap_servers: str = Field(alias="bootstrap.servers", min_length=1)
    security_protocol: SecurityProtocol = Field(SecurityProtocol.PLAINTEXT, alias="security.protocol")
    sasl_mechanism: SaslMechanism | None = Field(None, alias="sasl.mechanism")
    sasl_username: str | None = Field(None, alias="sasl.username")
    sasl_password: str | None = Field(None, alias="sasl.password")
    ssl_ca_location: str | None = Field(None, alias="ssl.ca.location")


class ArangoExtra(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    protocol: str = Field("http", pattern=r"^https?$")


def _fail(conn: ConnectionLike, exc: ValidationError) -> ConnectionSettingsError:
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return ConnectionSettingsError(f"connection {conn.conn_id!r}: {problems}")


def kafka_extra(conn: ConnectionLike) -> KafkaExtra:
    try:
        return KafkaExtra.model_validate(conn.extra_dejson)
    except ValidationError as exc:
        raise _fail(conn, exc) from None


def arango_url(conn: ConnectionLike) -> str:
    if not conn.host:
        raise ConnectionSettingsError(f"connection {conn.conn_id!r}: host is empty")
    if "://" in conn.host:
        return conn.host.rstrip("/")
    try:
        protocol = ArangoExtra.model_validate(conn.extra_dejson).protocol
    except ValidationError as exc:
        raise _fail(conn, exc) from None
    return f"{protocol}://{conn.host}:{conn.port or 8529}"


def arango_database(conn: ConnectionLike) -> str:
    return conn.schema or "streamforge"


def worker_env(kafka: ConnectionLike, arango: ConnectionLike | None) -> dict[str, str]:
    """KAFKA_* and (with `arango`) ARANGO_* worker variables, credentials included."""
    extra = kafka_extra(kafka)
    env: dict[str, str | None] = {
        "KAFKA_BOOTSTRAP_SERVERS": extra.bootstrap_servers,
        "KAFKA_SECURITY_PROTOCOL": extra.security_protocol.value,
        "KAFKA_SASL_MECHANISM": extra.sasl_mechanism.value if extra.sasl_mechanism else None,
        "KAFKA_USER": extra.sasl_username,
        "KAFKA_PASSWORD": extra.sasl_password,
        "KAFKA_CA_PATH": extra.ssl_ca_location,
    }
    if arango is not None:
        env |= {
            "ARANGO_URL": arango_url(arango),
            "ARANGO_DB": arango_database(arango),
            "ARANGO_USER": arango.login,
            "ARANGO_PASSWORD": arango.password,
        }
    result = {key: str(value) for key, value in env.items() if value not in (None, "")}
    _check_kafka(kafka, result)
    return result


def _check_kafka(conn: ConnectionLike, env: Mapping[str, str]) -> None:
    """The workers' own rules (SASL needs credentials, the CA file must exist), checked early."""
    try:
        KafkaEnv.model_validate({k.lower(): v for k, v in env.items() if k.startswith("KAFKA_")})
    except ValidationError as exc:
        raise ConnectionSettingsError(f"connection {conn.conn_id!r}: {format_errors(exc)}") from None
