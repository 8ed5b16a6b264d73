"""The analyst's path in a real browser: the Dagster webserver on loopback with the project's
definitions, headless Chromium (Debian's), one partition launched from the UI's buttons, and the
score chart found in the asset's metadata. Screenshots go to $KARTE_TEST_ARTIFACTS
(default karte_assets_tests/artifacts/).
"""

import os
import shutil
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from karte_assets.definitions import ASSETS
from karte_assets_tests.webserver import webserver as running_webserver

PARTITION = "2026-06-01"
ARTIFACTS = Path(os.environ.get("KARTE_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))
# Generous: a loaded 2-core machine renders the asset graph slowly.
UI_TIMEOUT_S, RUN_TIMEOUT_S = 60, 180


def chromium() -> tuple[str, str]:
    """Debian's chromium and chromedriver; missing, the test fails in CI and skips elsewhere."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    reason = (
        "chromium or chromedriver not on PATH: `make browser` installs Debian's chromium and chromium-driver"
    )
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def webserver(tmp_path):
    with running_webserver(
        tmp_path, ARTIFACTS / "webserver.log", {"KARTE_SYNTHETIC_USERS_PER_DAY": "40"}
    ) as url:
        yield url


@pytest.fixture
def browser():
    binary, driver_path = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    # Wide enough that the asset graph fits at full zoom, where nodes show their whole names.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=2800,1400"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
def test_an_analyst_materialises_a_day_from_the_ui_and_finds_the_score_chart(browser, webserver):
    def wait(timeout: float = UI_TIMEOUT_S) -> WebDriverWait:
        return WebDriverWait(browser, timeout)

    def visible(xpath: str, timeout: float = UI_TIMEOUT_S):
        return wait(timeout).until(seen.visibility_of_element_located((By.XPATH, xpath)))

    def screenshot(name: str) -> None:
        browser.save_screenshot(str(ARTIFACTS / f"ui-{name}.png"))

    started = time.monotonic()
    try:
        browser.get(webserver)
        # The first visit opens a "join the community" dialog over everything; it was seen already.
        browser.execute_script("localStorage.setItem('communityNux', '\"1\"')")

        # The loyalty group's own lineage: with more than one group the global one shows groups only.
        browser.get(f"{webserver}/locations/__repository__@karte_assets.definitions/asset-groups/loyalty")
        for asset in ASSETS:
            name = asset.key.to_user_string()
            # Nodes live in SVG foreignObjects, which Selenium never counts as displayed.
            node = wait().until(
                seen.presence_of_element_located(
                    (By.CSS_SELECTOR, f"foreignObject div[data-tooltip='{name}']")
                )
            )
            assert node.text == name
        screenshot("1-asset-graph")

        visible("//button[contains(., 'Materialize all')]").click()
        dialog = "//div[@role='dialog']"
        visible(f"{dialog}//*[contains(., 'Partition selection')]")
        # Only the last 90 days are offered until asked for all of them.
        for show_all in browser.find_elements(
            By.XPATH, f"{dialog}//button[normalize-space()='Show all partitions']"
        ):
            show_all.click()
        partitions = visible(f"{dialog}//input[starts-with(@placeholder, 'ex:')]")
        partitions.send_keys(PARTITION, Keys.ENTER)
        launch = wait().until(
            seen.element_to_be_clickable((By.XPATH, f"{dialog}//button[contains(., 'Launch 1 run')]"))
        )
        screenshot("2-launch-one-partition")
        launch.click()
        wait().until(seen.invisibility_of_element_located((By.XPATH, dialog)))

        browser.get(f"{webserver}/runs")
        # The instance is new: the one run in the list is ours.
        visible("//a[contains(@href, '/runs/')][normalize-space()='View']").click()
        status = "//div[contains(@class, 'BaseTag')][normalize-space()='{}']"
        outcome = wait(RUN_TIMEOUT_S).until(
            seen.any_of(
                seen.visibility_of_element_located((By.XPATH, status.format("Success"))),
                seen.visibility_of_element_located((By.XPATH, status.format("Failure"))),
            )
        )
        screenshot("3-run")
        assert outcome.text == "Success", f"the run failed; see {ARTIFACTS / 'ui-3-run.png'}"

        browser.get(f"{webserver}/assets/loyalty_scores")
        visible(f"//*[contains(@class, 'BaseTag')][normalize-space()='{PARTITION}']")
        visible("//input[@placeholder='Filter metadata keys']").send_keys("score_distribution_chart")
        visible(
            "//tr[td[normalize-space()='score_distribution_chart']]//a[normalize-space()='[Show Markdown]']"
        ).click()
        chart = visible(
            f"{dialog}//img[@alt='score_distribution_chart'][starts-with(@src, 'data:image/png;base64,')]"
        )
        wait().until(lambda _: browser.execute_script("return arguments[0].complete", chart))
        size = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", chart)
        screenshot("4-score-distribution-chart")
        assert size == [600, 350]
    except BaseException:
        screenshot("failure")
        raise
    print(f"browser test: {time.monotonic() - started:.0f}s from the first page to the chart")
