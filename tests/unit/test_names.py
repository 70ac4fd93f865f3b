"""Names (ARCHITECTURE §2): legal for Kafka, ArangoDB and Kubernetes, and collision-free in practice."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamforge.contracts.names import (
    INTERVALS,
    Component,
    DataType,
    InvalidName,
    Layout,
    RunNames,
    collection_name,
    dag_id,
    h6,
    validate_symbol,
)

KAFKA = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
ARANGO = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,255}$")
K8S = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

symbols = st.from_regex(r"\A[A-Z][A-Z0-9]{1,19}(_[A-Z0-9]{2,12})?\Z")
types = st.sampled_from(["api_trades", *(f"api_candles_{i}" for i in INTERVALS)])
days = st.datetimes(min_value=datetime(2017, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC))
run_ids = st.text(min_size=1, max_size=80)


def test_design_examples() -> None:
    names = RunNames("BTCUSDT", "api_candles_1m", datetime(2024, 8, 1, tzinfo=UTC), "abc123")
    assert names.queue_id == "wf-btcusdt-api_candles_1m-20240801-abc123"
    assert names.data_topic == "wf-btcusdt-api_candles_1m-20240801-abc123-data"
    assert names.collection == "btcusdt_api_candles_1m_2024_08_01"
    assert names.telemetry_id(Component.ARANGO_CANDLES) == "arango-candles__abc123"
    assert names.pod_name(Component.ARANGO_CANDLES) == "arango-candles-btcusdt-abc123"
    assert names.dag_id == "streamforge__btcusdt__api_candles_1m"
    single = RunNames("BTCUSDT", "api_candles_1m", datetime(2024, 8, 1, tzinfo=UTC), "abc123", Layout.SINGLE)
    assert single.collection == "btcusdt_api_candles_1m"


@settings(max_examples=300)
@given(symbol=symbols, data_type=types, day=days, run_id=run_ids, attempt=st.integers(1, 50))
def test_every_generated_name_is_legal(symbol: str, data_type: str, day: datetime, run_id: str, attempt: int) -> None:
    names = RunNames(symbol, data_type, day, h6(dag_id(symbol, data_type), run_id, attempt))
    assert KAFKA.match(names.queue_id) and KAFKA.match(names.data_topic)
    assert ARANGO.match(names.collection) and len(names.collection.encode()) <= 256
    for component in Component:
        assert K8S.match(names.pod_name(component)), names.pod_name(component)
        assert KAFKA.match(names.telemetry_id(component))
        for role in ("loader", "sink"):  # one component in both roles: the role joins the names
            assert K8S.match(names.pod_name(component, role)), names.pod_name(component, role)
            assert KAFKA.match(names.telemetry_id(component, role))


def test_one_component_in_both_roles_gets_a_name_per_role() -> None:
    names = RunNames("BTCUSDT", "api_candles_1m", datetime(2024, 8, 1, tzinfo=UTC), "abc123")
    usual = names.worker_ids({"loader": Component.LOADER, "sink": Component.ARANGO_CANDLES})
    assert usual == {
        "loader": ("loader__abc123", "loader-btcusdt-abc123"),
        "sink": ("arango-candles__abc123", "arango-candles-btcusdt-abc123"),
    }
    shared = names.worker_ids({"loader": Component.DUMMY, "sink": Component.DUMMY})
    assert shared == {
        "loader": ("dummy-service-loader__abc123", "dummy-service-loader-btcusdt-abc123"),
        "sink": ("dummy-service-sink__abc123", "dummy-service-sink-btcusdt-abc123"),
    }


@settings(max_examples=100)
@given(run_id=run_ids, attempt=st.integers(1, 1000))
def test_h6_is_stable_within_an_attempt_and_new_on_a_rerun(run_id: str, attempt: int) -> None:
    dag = "streamforge__btcusdt__api_candles_1m"
    assert h6(dag, run_id, attempt) == h6(dag, run_id, attempt)
    assert re.fullmatch(r"[0-9a-f]{6}", h6(dag, run_id, attempt))


def test_distinct_runs_do_not_collide_in_practice() -> None:
    # 2 years of daily runs x 3 attempts x 6 DAGs: 13k ids; a collision among them would let
    # one run read another's events. 24 bits make the expected number of pairs ~5.
    # What matters is collisions among runs of the same DAG and window day, checked here.
    seen: set[str] = set()
    dag = dag_id("BTCUSDT", "api_candles_1m")
    day = datetime(2024, 8, 1, tzinfo=UTC)
    for manual in range(2000):
        for attempt in (1, 2, 3):
            queue_id = RunNames("BTCUSDT", "api_candles_1m", day, h6(dag, f"manual__{manual}", attempt)).queue_id
            assert queue_id not in seen
            seen.add(queue_id)


def test_attempts_of_one_run_never_share_h6() -> None:
    dag = dag_id("ETHUSDT", "api_trades")
    start = datetime(2020, 1, 1, tzinfo=UTC)
    for offset in range(366):
        run_id = f"scheduled__{(start + timedelta(days=offset)).isoformat()}"
        attempts = {h6(dag, run_id, attempt) for attempt in range(1, 6)}
        assert len(attempts) == 5


@pytest.mark.parametrize(
    ("symbol", "message"),
    [
        ("btc usdt", "illegal symbol"),
        ("BTC-USDT", "illegal symbol"),
        ("B", "illegal symbol"),
        ("BTCUSDT/ETH", "illegal symbol"),
        ("", "illegal symbol"),
    ],
)
def test_illegal_symbol_is_refused_with_a_clear_message(symbol: str, message: str) -> None:
    with pytest.raises(InvalidName, match=message):
        validate_symbol(symbol)


def test_symbol_starting_with_a_digit_cannot_name_a_collection() -> None:
    with pytest.raises(InvalidName, match="illegal ArangoDB collection name '1000satsusdt_api_trades_"):
        RunNames("1000SATSUSDT", "api_trades", datetime(2024, 1, 1, tzinfo=UTC), "abc123")


@pytest.mark.parametrize("bad", ["api_candles_7m", "candles_1m", "api_trade", "ws_trades", ""])
def test_unknown_type_is_refused(bad: str) -> None:
    with pytest.raises(InvalidName, match="unknown data type"):
        DataType.parse(bad)


def test_bad_h6_and_naive_dates_are_refused() -> None:
    with pytest.raises(InvalidName, match="illegal h6"):
        RunNames("BTCUSDT", "api_trades", datetime(2024, 1, 1, tzinfo=UTC), "XYZ")
    with pytest.raises(InvalidName, match="timezone-aware"):
        RunNames("BTCUSDT", "api_trades", datetime(2024, 1, 1), "abc123")


def test_interval_grid() -> None:
    day = int(datetime(2024, 8, 1, tzinfo=UTC).timestamp() * 1000)
    assert len(INTERVALS["1m"].open_times(day, day + 86_400_000)) == 1440
    assert len(INTERVALS["1h"].open_times(day, day + 31 * 86_400_000)) == 744
    # weekly candles open on Mondays; 2024-08-05 is a Monday
    weeks = INTERVALS["1w"].open_times(day, day + 14 * 86_400_000)
    assert [datetime.fromtimestamp(t / 1000, UTC).date().isoformat() for t in weeks] == ["2024-08-05", "2024-08-12"]
    year = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
    months = INTERVALS["1M"].open_times(year, int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000))
    assert len(months) == 12
    assert INTERVALS["1M"].close_time(months[1]) == int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000) - 1


def test_data_type_fields_and_windows() -> None:
    assert DataType.parse("api_candles_1m").sink is Component.ARANGO_CANDLES
    assert DataType.parse("api_trades").sink is Component.ARANGO_TRADES
    assert DataType.parse("api_trades").max_window == timedelta(days=1)
    assert DataType.parse("api_candles_1s").max_window < DataType.parse("api_candles_1m").max_window
    assert (
        collection_name("ETHUSDT", "api_trades", datetime(2024, 2, 29, tzinfo=UTC)) == "ethusdt_api_trades_2024_02_29"
    )
