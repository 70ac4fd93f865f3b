"""The trigger form in a real browser (Debian's chromium + chromium-driver, headless, selenium).

Log in, open a DAG's trigger form, set a day with the form's date pickers, submit, and see the
run succeed in the UI. Screenshots of every step go to `.ci-artifacts/browser/` (CI keeps them).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from streamforge.stack import local as sf
from streamforge.stack.local import LocalStack
from streamforge.stack.paths import REPO_ROOT

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

DAG = "streamforge__btcusdt__api_candles_1m"
DAY = date(2020, 1, 2)
ARTIFACTS = REPO_ROOT / ".ci-artifacts" / "browser"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs chromium + chromium-driver (apt)"),
]


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The steps of the walk-through, each ending with a screenshot."""

    def __init__(self, driver: WebDriver, base_url: str, shots: Path) -> None:
        self.driver, self.base_url, self.shots = driver, base_url, shots
        self.step = 0
        shots.mkdir(parents=True, exist_ok=True)

    def wait(self, timeout: float = 60) -> WebDriverWait[WebDriver]:
        return WebDriverWait(self.driver, timeout)

    def shot(self, name: str) -> None:
        self.step += 1
        self.driver.save_screenshot(str(self.shots / f"{self.step:02d}-{name}.png"))

    def visible(self, by: str, selector: str, timeout: float = 60) -> WebElement:
        return self.wait(timeout).until(ec.visibility_of_element_located((by, selector)))

    def log_in(self, username: str, password: str) -> None:
        self.driver.get(self.base_url)
        self.visible(By.NAME, "username").send_keys(username)
        self.driver.find_element(By.NAME, "password").send_keys(password)
        self.shot("login")
        self.driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        self.wait().until(lambda d: "/auth/login" not in d.current_url)

    def open_trigger_form(self, dag_id: str) -> None:
        self.driver.get(f"{self.base_url}/dags/{dag_id}")
        self.visible(By.CSS_SELECTOR, "button[aria-label='Trigger Dag']").click()
        self.visible(By.XPATH, "//label[starts-with(normalize-space(.), 'Window start')]")
        self.shot("trigger-form")

    def field(self, label: str) -> WebElement:
        xpath = f"//label[starts-with(normalize-space(.), '{label}')]/ancestor::*[@role='group'][1]"
        return self.driver.find_element(By.XPATH, xpath)

    def pick_day(self, label: str, day: date) -> None:
        """Open the field's date/time picker and type the day into its Date box (time: 00:00)."""
        field = self.field(label)
        field.find_element(By.CSS_SELECTOR, "[data-testid=datetime-input]").click()
        popover = self.visible(By.CSS_SELECTOR, "[data-scope=popover][data-part=content][data-state=open]")
        popover.find_element(By.CSS_SELECTOR, "input[placeholder='YYYY/MM/DD']").send_keys(day.strftime("%Y/%m/%d"))
        shown = day.strftime("%b %d, %Y")  # how the field displays the picked value
        self.wait(10).until(lambda _: shown in field.text)
        self.shot(f"picked-{label.split()[1]}")
        field.find_element(By.TAG_NAME, "label").click()  # close the picker
        self.wait(10).until(ec.invisibility_of_element(popover))

    def submit(self) -> None:
        buttons = self.driver.find_elements(By.XPATH, "//*[@role='dialog']//button[normalize-space(.)='Trigger']")
        assert buttons, "no Trigger button in the trigger dialog"
        tuning = self.driver.find_element(By.XPATH, "//*[@role='dialog']//*[normalize-space(text())='Tuning']")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", tuning)
        self.shot("filled")  # the Tuning section (batch size, partitions, timeout) in view
        buttons[-1].click()


def test_trigger_a_day_from_the_form_and_see_it_succeed(
    airflow_stack: LocalStack, airflow_api: httpx.Client, browser: WebDriver
) -> None:
    assert airflow_stack.airflow is not None
    airflow_stack.airflow.wait_for_dag(DAG)
    sf.unpause(airflow_api, DAG)
    before = {r["dag_run_id"] for r in sf.runs(airflow_api, DAG)}
    page = Page(browser, airflow_stack.airflow.url, ARTIFACTS)

    page.log_in(airflow_stack.airflow.username, airflow_stack.airflow.password)
    page.open_trigger_form(DAG)
    assert "BTCUSDT · candles 1m" in browser.page_source  # the display name, not the id
    page.pick_day("Window start", DAY)
    page.pick_day("Window end", date(DAY.year, DAY.month, DAY.day + 1))
    page.submit()

    deadline = time.monotonic() + 60
    while not (new := [r for r in sf.runs(airflow_api, DAG) if r["dag_run_id"] not in before]):
        assert time.monotonic() < deadline, "the form created no run"
        time.sleep(1)
    run = new[0]
    assert run["conf"]["start"].startswith("2020-01-02") and run["conf"]["end"].startswith("2020-01-03"), run["conf"]
    finished = sf.wait_for_run(airflow_api, DAG, run["dag_run_id"], timeout=420)
    assert finished["state"] == "success", sf.task_states(airflow_api, DAG, run["dag_run_id"])
    assert airflow_stack.collection_count("btcusdt_api_candles_1m_2020_01_02") == 1440

    browser.get(f"{airflow_stack.airflow.url}/dags/{DAG}/runs/{run['dag_run_id']}")
    # The run's own state badge, next to its id in the page header (not a task's state).
    run_id = run["dag_run_id"]
    header = f"//*[normalize-space(text())='{run_id}']/ancestor::*[position()<=2][.//*[normalize-space(.)='Success']]"
    try:
        page.visible(By.XPATH, header)
    finally:
        page.shot("run-succeeded")
