"""Coverage and the sweeper on the real stack (Kafka, ArangoDB-compatible server, replay, Airflow).

A catalog of one pipeline, BTCUSDT 1m with history 2020-01-01..03. The replay serves a wrong
.CHECKSUM for day 2 while the first backfill runs, so that day fails once. Then the CLI
(`streamforge coverage --json`), the `streamforge__coverage` DAG (XCom and run note) and the
coverage page in the Airflow UI (a real Chromium) all show day 2 failed; one sweep creates
exactly one backfill, for day 2, through Airflow's backfill API; a sweep while it runs and a
sweep after it schedule nothing; and the three surfaces then show every day complete, with
the page's numbers equal to ArangoDB's counts.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from streamforge.contracts.names import collection_name
from streamforge.orchestration.maintenance import COVERAGE_DAG_ID, SWEEPER_DAG_ID
from streamforge.orchestration.task_ids import SUMMARIZE_COVERAGE, SWEEP
from streamforge.stack import local as sf
from streamforge.stack.local import ArangoTarget, LocalStack
from streamforge.stack.paths import REPO_ROOT

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

DAG = "streamforge__btcusdt__api_candles_1m"
DAYS = ("2020-01-01", "2020-01-02", "2020-01-03")
FAILING_CHECKSUM = "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2020-01-02.zip.CHECKSUM"
ARTIFACTS = REPO_ROOT / ".ci-artifacts"
PIPELINES = [
    {
        "name": "history-test",
        "symbols": ["BTCUSDT"],
        "types": ["api_candles_1m"],
        # No run deadline: Airflow 3.3.2 cannot clear a run that has a DAGRUN_QUEUED_AT deadline
        # (apache/airflow#70368, HTTP 500), and a backfill over a failed day clears that run.
        "overrides": {"history": {"since": DAYS[0], "until": DAYS[-1]}, "alerts": {"run_deadline_minutes": None}},
    }
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, kafka_broker, arango_endpoint, binance_replay, postgres) -> Iterator[LocalStack]:  # type: ignore[no-untyped-def]
    arango = ArangoTarget(arango_endpoint.url, arango_endpoint.username, arango_endpoint.password,
                          database=f"sf_coverage_{secrets.token_hex(4)}")  # fmt: skip
    home = tmp_path_factory.mktemp("coverage-stack")
    stack = LocalStack(kafka=kafka_broker, arango=arango, binance=binance_replay, postgres=postgres, home=home,
                       catalog_overrides={"pipelines": PIPELINES})  # fmt: skip
    stack.start()
    try:
        assert stack.airflow is not None
        for dag_id in (DAG, COVERAGE_DAG_ID, SWEEPER_DAG_ID):
            stack.airflow.wait_for_dag(dag_id)
        yield stack
    finally:
        binance_replay.clear_faults()
        stack.stop()
        arango.client().db("_system", arango.username, arango.password).delete_database(
            arango.database, ignore_missing=True
        )


def _wait_backfills_done(api: httpx.Client, dag_id: str, timeout: float = 900) -> list[dict[str, Any]]:
    """Every backfill of the DAG has completed (its runs ended and Airflow closed it)."""
    deadline = time.monotonic() + timeout
    while True:
        backfills = sf.check(api.get("/api/v2/backfills", params={"dag_id": dag_id}))["backfills"]
        if backfills and all(b.get("completed_at") for b in backfills):
            return backfills
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfills of {dag_id} still open: {backfills}; runs {sf.runs(api, dag_id)}")
        time.sleep(2)


def _run_dag(api: httpx.Client, dag_id: str, task_id: str) -> tuple[Any, str]:
    """Trigger a maintenance DAG, wait for success; its XCom and run note."""
    run = sf.trigger(api, dag_id)
    done = sf.wait_for_run(api, dag_id, run["dag_run_id"], timeout=240)
    assert done["state"] == "success", sf.task_states(api, dag_id, run["dag_run_id"])
    note = sf.check(api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}"))["note"] or ""
    return sf.xcom(api, dag_id, run["dag_run_id"], task_id), note


def _cli(stack: LocalStack, tmp: Path) -> dict[str, dict[str, Any]]:
    """`streamforge coverage --json` against this stack: day -> entry."""
    assert stack.airflow is not None and stack.arango is not None
    (tmp / "af").write_text(stack.airflow.password)
    (tmp / "ar").write_text(stack.arango.password)
    out = subprocess.run(
        [sys.executable, "-m", "streamforge", "coverage", "--json", "--pipeline", DAG,
         "--catalog", str(stack.catalog_path), "--airflow-url", stack.airflow.url,
         "--airflow-password-file", str(tmp / "af"), "--arango-url", stack.arango.url,
         "--arango-database", stack.arango.database, "--arango-user", stack.arango.username,
         "--arango-password-file", str(tmp / "ar")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (cov,) = json.loads(out.stdout)
    return {d["day"]: d for d in cov["days"]}


def _page(stack: LocalStack, shot: str) -> dict[str, dict[str, str]]:
    """The coverage page inside the Airflow UI, in Chromium: day -> the cell's data attributes."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    assert stack.airflow is not None
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        driver.get(f"{stack.airflow.url}/api/v2/monitor/health")  # the cookie's origin
        driver.add_cookie({"name": "_token", "value": stack.airflow.token(), "path": "/"})
        driver.get(f"{stack.airflow.url}/plugin/streamforge-coverage")
        frame = WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.TAG_NAME, "iframe")))
        assert "/streamforge/coverage" in (frame.get_attribute("src") or "")
        driver.switch_to.frame(frame)
        WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "a.day")))
        cells = {
            c.get_attribute("data-day"): {
                k: c.get_attribute(f"data-{k}") or "" for k in ("state", "stored", "expected", "run-id", "dag-id")
            }
            | {"href": c.get_attribute("href") or ""}
            for c in driver.find_elements(By.CSS_SELECTOR, f'a.day[data-dag-id="{DAG}"]')
        }
        driver.switch_to.default_content()
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / shot))
        return cells
    finally:
        driver.quit()


def _states(entries: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {day: entries[day]["state"] for day in DAYS}


def test_day_2_fails_once_and_one_sweep_repairs_it(stack: LocalStack, binance_replay, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert stack.airflow is not None
    counts = {d: stack.collection_count(collection_name("BTCUSDT", "api_candles_1m", _midnight(d))) for d in DAYS}
    assert counts == dict.fromkeys(DAYS, 0)
    failed_expected = {DAYS[0]: "complete", DAYS[1]: "failed", DAYS[2]: "complete"}

    with stack.client() as api:
        binance_replay.add_fault("bad_checksum", path_prefix=FAILING_CHECKSUM)
        sf.create_backfill(api, DAG, f"{DAYS[0]}T00:00:00Z", f"{DAYS[-1]}T00:00:00Z", max_active_runs=3)
        _wait_backfills_done(api, DAG)
        binance_replay.clear_faults()
        runs = {r["logical_date"][:10]: r["state"] for r in sf.runs(api, DAG)}
        runs_by_id = {r["dag_run_id"]: r["state"] for r in sf.runs(api, DAG)}
        assert runs == {DAYS[0]: "success", DAYS[1]: "failed", DAYS[2]: "success"}

        # 1. every surface shows day 2 failed
        assert _states(_cli(stack, tmp_path)) == failed_expected
        summary, note = _run_dag(api, COVERAGE_DAG_ID, SUMMARIZE_COVERAGE)
        assert _states(summary[DAG]["days"]) == failed_expected
        assert "1 failed" in note and f"{DAYS[1]} failed" in note
        page = _page(stack, "coverage-day2-failed.png")
        assert _states(page) == failed_expected
        failed_run = page[DAYS[1]]["run-id"]
        assert runs_by_id[failed_run] == "failed"
        assert page[DAYS[1]]["href"] == f"{stack.airflow.url}/dags/{DAG}/runs/{quote(failed_run, safe='')}"

        # 2. one sweep: exactly one backfill, for day 2; a sweep while it runs schedules nothing
        before = {b["id"] for b in sf.check(api.get("/api/v2/backfills", params={"dag_id": DAG}))["backfills"]}
        report, note = _run_dag(api, SWEEPER_DAG_ID, SWEEP)
        assert [(b["dag_id"], b["first"], b["last"], b["runs"]) for b in report["scheduled"]] == [
            (DAG, DAYS[1], DAYS[1], 1)
        ], note
        assert f"{DAG} {DAYS[1]}: 1 run(s), 1 failed" in note
        created = [b for b in sf.check(api.get("/api/v2/backfills", params={"dag_id": DAG}))["backfills"]
                   if b["id"] not in before]  # fmt: skip
        assert [(b["from_date"][:10], b["to_date"][:10]) for b in created] == [(DAYS[1], DAYS[1])]
        report, _ = _run_dag(api, SWEEPER_DAG_ID, SWEEP)
        assert report["scheduled"] == []
        _wait_backfills_done(api, DAG)

        # 3. every surface shows every day complete, the page's numbers are ArangoDB's
        counts = {d: stack.collection_count(collection_name("BTCUSDT", "api_candles_1m", _midnight(d))) for d in DAYS}
        assert counts == dict.fromkeys(DAYS, 1440)
        complete = dict.fromkeys(DAYS, "complete")
        cli = _cli(stack, tmp_path)
        assert _states(cli) == complete and {d: cli[d]["stored"] for d in DAYS} == counts
        summary, note = _run_dag(api, COVERAGE_DAG_ID, SUMMARIZE_COVERAGE)
        assert _states(summary[DAG]["days"]) == complete and "3 complete" in note
        page = _page(stack, "coverage-all-complete.png")
        assert _states(page) == complete
        assert {d: int(page[d]["stored"]) for d in DAYS} == counts
        assert {d: int(page[d]["expected"]) for d in DAYS} == dict.fromkeys(DAYS, 1440)

        # 4. and a sweep after it schedules nothing
        report, note = _run_dag(api, SWEEPER_DAG_ID, SWEEP)
        assert report["scheduled"] == [] and report["skipped"] == [] and "nothing to load" in note
        assert len(sf.check(api.get("/api/v2/backfills", params={"dag_id": DAG}))["backfills"]) == len(before) + 1


def _midnight(day: str) -> Any:
    from datetime import UTC, datetime

    return datetime.fromisoformat(day).replace(tzinfo=UTC)
