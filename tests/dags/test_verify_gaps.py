"""verify with recorded exchange gaps: expected = grid - gaps, trade id spans minus gap ids."""

from __future__ import annotations

from streamforge.contracts.gaps import Gap
from streamforge.orchestration.verify import Summary, check
from tests.dags.test_verify_and_topics import plan_for

AUG1 = 1_722_470_400_000  # 2024-08-01T00:00:00Z, the window of plan_for


def _gap(data_type: str, first: int, last: int, count: int) -> Gap:
    unit = "trade_id" if data_type == "api_trades" else "open_time_ms"
    return Gap(
        symbol="BTCUSDT", data_type=data_type, unit=unit, first=first, last=last, count=count, confirmed_by="rest_range"
    )


def test_candle_gap_is_subtracted_from_the_grid() -> None:
    plan = plan_for("api_candles_1h")
    gap = _gap("api_candles_1h", AUG1 + 3 * 3_600_000, AUG1 + 4 * 3_600_000, 2)
    ok = check(plan, Summary(count=22, first=AUG1, last=AUG1 + 23 * 3_600_000), 22, [gap])
    assert ok.ok and ok.expected_count == 22 and ok.gaps == [gap]
    assert "gaps=2 in 1 range(s)" in ok.line()
    # without the recorded gap the same summary is a failure: verify stays exact
    assert check(plan, Summary(count=22, first=AUG1, last=AUG1 + 23 * 3_600_000), 22).problems
    # a leading gap moves the expected first open time
    lead = _gap("api_candles_1h", AUG1, AUG1, 1)
    assert check(plan, Summary(count=23, first=AUG1 + 3_600_000, last=AUG1 + 23 * 3_600_000), 23, [lead]).ok


def test_trade_gap_ids_count_as_recorded() -> None:
    plan = plan_for("api_trades")
    gap = _gap("api_trades", 105, 109, 5)
    assert check(plan, Summary(count=10, first=100, last=114), 10, [gap]).ok
    bad = check(plan, Summary(count=9, first=100, last=114), 9, [gap])
    assert bad.problems == ["trade ids 100..114 span 15 ids for 9 trades and 5 recorded as exchange gaps: 1 missing"]
