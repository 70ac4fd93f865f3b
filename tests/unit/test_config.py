"""Worker configuration (ARCHITECTURE §5): one parse, exit 2 naming the variable."""

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from streamforge.contracts.config import (
    EXIT_CONFIG,
    KafkaEnv,
    LoaderSettings,
    SinkSettings,
    TimeRange,
    kafka_client_config,
    load_settings,
)

LOADER_ENV = {
    "QUEUE_ID": "wf-btcusdt-api_candles_1m-20200101-abc123",
    "SYMBOL": "btcusdt",
    "TYPE": "api_candles_1m",
    "TIME_RANGE": "2020-01-01/2020-01-02",
    "KAFKA_TOPIC": "wf-btcusdt-api_candles_1m-20200101-abc123-data",
    "TELEMETRY_PRODUCER_ID": "loader__abc123",
    "QUEUE_CREATED_AT": "2020-01-02T00:00:05Z",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
}


def test_loader_settings_from_env() -> None:
    settings = load_settings(LoaderSettings, LOADER_ENV)
    assert settings.symbol == "BTCUSDT"
    assert settings.time_range.start == datetime(2020, 1, 1, tzinfo=UTC)
    assert settings.time_range.end_ms - settings.time_range.start_ms == 86_400_000
    assert settings.queue_created_at_ms == 1577923205000
    assert settings.loader_source == "auto"
    assert settings.kafka_config() == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [
        ("2020-01-01/2020-01-02", "2020-01-01T00:00:00+00:00", "2020-01-02T00:00:00+00:00"),
        ("2020-01-01T06:00:00Z/2020-01-01T07:30:00Z", "2020-01-01T06:00:00+00:00", "2020-01-01T07:30:00+00:00"),
        (
            "2020-01-01T02:00:00+02:00/2020-01-01T03:00:00+02:00",
            "2020-01-01T00:00:00+00:00",
            "2020-01-01T01:00:00+00:00",
        ),
        # the seed form names both days inclusively
        ("2020-01-01:2020-01-03", "2020-01-01T00:00:00+00:00", "2020-01-04T00:00:00+00:00"),
        ("2020-01-01:2020-01-01", "2020-01-01T00:00:00+00:00", "2020-01-02T00:00:00+00:00"),
    ],
)
def test_time_range_forms(value: str, start: str, end: str) -> None:
    window = TimeRange.model_validate(TimeRange.parse(value))
    assert (window.start.isoformat(), window.end.isoformat()) == (start, end)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"TIME_RANGE": "2020-01-02/2020-01-01"}, "TIME_RANGE: end 2020-01-01T00:00:00+00:00 must be after start"),
        ({"TIME_RANGE": "2020-01-01"}, "TIME_RANGE: '2020-01-01' is neither ISO-8601 'start/end'"),
        ({"TIME_RANGE": "2020-13-01/2020-01-02"}, "TIME_RANGE: start '2020-13-01' is not an ISO-8601 date"),
        ({"TIME_RANGE": "2020-01-03:2020-01-01"}, "TIME_RANGE: end 2020-01-02T00:00:00+00:00 must be after start"),
        ({"TYPE": "api_candles_7m"}, "TYPE: unknown data type 'api_candles_7m'"),
        (
            # a monthly run's month at most (plan keeps daily runs of trades to a day)
            {"TYPE": "api_trades", "TIME_RANGE": "2020-01-01:2020-02-01"},
            "error: TIME_RANGE 2020-01-01T00:00:00Z/2020-02-02T00:00:00Z is longer than the 31 days one api_trades",
        ),
        ({"SYMBOL": "BTC/USDT"}, "SYMBOL: illegal symbol 'BTC/USDT'"),
        ({"LOADER_SOURCE": "ftp"}, "LOADER_SOURCE: Input should be 'auto', 'rest' or 'archive'"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_USER and KAFKA_PASSWORD are required"),
        ({"KAFKA_CA_PATH": "/nonexistent/ca.crt"}, "KAFKA_CA_PATH '/nonexistent/ca.crt' is not a readable file"),
        ({"QUEUE_CREATED_AT": "yesterday"}, "QUEUE_CREATED_AT: Input should be a valid datetime"),
    ],
)
def test_bad_config_exits_2_naming_the_variable(
    changes: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        load_settings(LoaderSettings, {**LOADER_ENV, **changes})
    assert info.value.code == EXIT_CONFIG
    assert message in capsys.readouterr().err


def test_missing_variable_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    env = {k: v for k, v in LOADER_ENV.items() if k != "KAFKA_TOPIC"}
    with pytest.raises(SystemExit):
        load_settings(LoaderSettings, env)
    assert "KAFKA_TOPIC: Field required (environment variable not set)" in capsys.readouterr().err


def test_real_process_environment_exit_code() -> None:
    """The contract as a worker sees it: a process, its environment, its exit code."""
    code = "from streamforge.contracts.config import LoaderSettings, load_settings; load_settings(LoaderSettings)"
    result = subprocess.run(
        [sys.executable, "-c", code], env={**LOADER_ENV, "TIME_RANGE": "soon"}, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "TIME_RANGE" in result.stderr and "soon" in result.stderr


def test_sink_settings_never_expose_the_password() -> None:
    env = {
        **LOADER_ENV,
        "COLLECTION_NAME": "btcusdt_api_candles_1m_2020_01_01",
        "ARANGO_URL": "http://a:8529",
        "ARANGO_PASSWORD": "s3cret-value",
    }
    settings = load_settings(SinkSettings, env)
    assert settings.arango_password.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in str(settings.model_dump())
    assert settings.component == "arango-candles"


def test_kafka_client_config_for_every_protocol(tmp_path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert kafka_client_config("b:1") == {"bootstrap.servers": "b:1", "security.protocol": "PLAINTEXT"}
    assert kafka_client_config("b:1", "SSL", ca_path=str(ca))["ssl.ca.location"] == str(ca)
    sasl_plain = kafka_client_config("b:1", "SASL_PLAINTEXT", "SCRAM-SHA-256", "u", "p")
    assert sasl_plain["sasl.mechanism"] == "SCRAM-SHA-256" and "ssl.ca.location" not in sasl_plain
    env = KafkaEnv.model_validate(
        {
            "kafka_bootstrap_servers": "b:1",
            "kafka_security_protocol": "SASL_SSL",
            "kafka_user": "u",
            "kafka_password": "p",
            "kafka_ca_path": str(ca),
        }
    )
    assert env.kafka_config() == {
        "bootstrap.servers": "b:1",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u",
        "sasl.password": "p",
        "ssl.ca.location": str(ca),
    }
    with pytest.raises(ValueError, match="SASL_SSL needs a user and a password"):
        kafka_client_config("b:1", "SASL_SSL")
