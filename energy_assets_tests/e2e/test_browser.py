"""The Dagster UI in headless Chromium: the asset graph, a mart's metadata plots and a failed run's error.

Debian's `chromium` (installed by scripts/setup.sh when root with apt) is driven over the Chrome DevTools
Protocol: the UI is a React app that renders after its GraphQL queries return, so each check polls the page
text until it shows what is expected (bounded), and the plot needs two clicks (Metadata: Plots, Events).
Screenshots are written under the test's tmp_path and their paths printed.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from websockets.sync.client import ClientConnection, connect

from energy_assets_tests.e2e.conftest import (
    DagsterUI,
    FailingSourceRun,
    SampleMaterializations,
    stop_process_group,
)

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this network refuses.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)
VIEWPORT = {"width": 1600, "height": 1000}
PAGE_TIMEOUT_S = 90.0
SETTLE_TIMEOUT_S = 20.0
POLL_S = 0.5

ENERGY_CHARTS_ASSETS = ("day_ahead_price", "public_power", "public_power_share", "price", "installed_power")
MARTS_DOWNSTREAM = ("daily_price_analysis", "daily_production_trend", "underperformance_30min")
PLOTTED_LABEL = "mean_price_eur_per_mwh"

# Pixels (alpha > 0) drawn on the canvas of the plot titled %s (Chart.js draws plots on canvases); -1: no such plot.
PLOT_INK_JS = """
(() => {
  const title = [...document.querySelectorAll('*')]
    .filter((el) => el.children.length === 0 && el.textContent.trim() === %s)
    .pop();
  let box = title;
  while (box && !box.querySelector('canvas')) { box = box.parentElement; }
  // The plot's own box holds exactly one canvas; anything larger means the title was not a plot's.
  if (!box || box.querySelectorAll('canvas').length !== 1) { return -1; }
  const canvas = box.querySelector('canvas');
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let ink = 0;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) { ink++; } }
  return ink;
})()
"""
CLICK_BUTTON_JS = """
(() => {
  const button = [...document.querySelectorAll('button')].find((b) => b.innerText.trim() === %s);
  if (button) { button.click(); }
  return Boolean(button);
})()
"""
SCROLL_TO_BUTTON_JS = """
(() => {
  const button = [...document.querySelectorAll('button')].find((b) => b.innerText.trim() === %s);
  if (button) { button.scrollIntoView({block: 'start'}); }
  return Boolean(button);
})()
"""
FOCUS_LOG_FILTER_JS = """
(() => {
  const input = document.querySelector('input[placeholder^="Filter"]');
  if (input) { input.focus(); }
  return Boolean(input);
})()
"""

if CHROMIUM is None:
    pytest.skip(
        "Debian's chromium is not installed (scripts/setup.sh installs it when run as root with apt)",
        allow_module_level=True,
    )


class Page:
    """One browser tab over the DevTools protocol: navigate, evaluate JavaScript, take screenshots."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:  # events arrive in between; the answer carries our id
            message = json.loads(self.socket.recv(timeout=PAGE_TIMEOUT_S))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def open(self, url: str, *expected: str) -> str:
        """Navigate and wait until the page text shows every expected string; returns the text."""
        self.call("Page.navigate", url=url)
        return self.wait_for_text(url, expected)

    def wait_for_text(self, where: str, expected: tuple[str, ...], timeout_s: float = PAGE_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout_s
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if all(item in text for item in expected):
                return text
            time.sleep(POLL_S)
        missing = [item for item in expected if item not in text]
        pytest.fail(f"{where} never showed {missing}; the page said:\n{text[:3000]}")

    def settle(self, busy_text: str = "Loading") -> None:
        """Give lazily loaded parts (node status, live data) a bounded moment to finish."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while busy_text in self.text() and time.monotonic() < deadline:
            time.sleep(POLL_S)

    def click_button(self, label: str) -> None:
        assert self.evaluate(CLICK_BUTTON_JS % json.dumps(label)), f"no button {label!r} on the page"

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        print(f"screenshot: {path}")
        return path


def devtools_port(user_data_dir: Path, process: subprocess.Popen, timeout_s: float = 60.0) -> int:
    """Chromium writes the port it chose into DevToolsActivePort once it listens."""
    port_file = user_data_dir / "DevToolsActivePort"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"chromium exited with {process.returncode} before listening")
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text().splitlines()[0])
        time.sleep(0.1)
    pytest.fail(f"chromium did not write {port_file} within {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    folder = tmp_path_factory.mktemp("chromium")
    user_data_dir = folder / "profile"
    with (folder / "chromium.log").open("ab") as log:
        process = subprocess.Popen(
            [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        port = devtools_port(user_data_dir, process)
        targets = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        target = next(target for target in targets if target["type"] == "page")
        with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as socket:
            tab = Page(socket)
            tab.call("Page.enable")
            tab.call("Emulation.setDeviceMetricsOverride", deviceScaleFactor=1, mobile=False, **VIEWPORT)
            yield tab
    finally:
        stop_process_group(process, grace_s=10)


def test_asset_graph_page_shows_the_energy_charts_assets(
    dagster_ui: DagsterUI, sample_materializations: SampleMaterializations, page: Page, tmp_path: Path
) -> None:
    url = f"{dagster_ui.base_url}/locations/energy_assets/asset-groups/energy_charts/lineage"
    text = page.open(url, *ENERGY_CHARTS_ASSETS, *MARTS_DOWNSTREAM)
    page.settle()
    screenshot = page.screenshot(tmp_path / "asset_graph_energy_charts.png")
    assert "energy_charts" in text and screenshot.stat().st_size > 20_000


def test_mart_page_plots_its_numeric_metadata(
    dagster_ui: DagsterUI, sample_materializations: SampleMaterializations, page: Page, tmp_path: Path
) -> None:
    url = f"{dagster_ui.base_url}/assets/{quote('marts/daily_price_analysis')}?view=overview"
    page.open(url, "daily_price_analysis", "Metadata", PLOTTED_LABEL)
    page.screenshot(tmp_path / "mart_overview.png")
    # The metadata section: Table -> Plots; a partitioned asset plots by partition key first, and the last 120
    # keys (2026) hold none of the sample days, so switch the x axis to Events (materialization time).
    page.click_button("Plots")
    page.wait_for_text("the Plots view", ("Partitions", "Events"))
    page.click_button("Events")
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    ink = page.evaluate(PLOT_INK_JS % json.dumps(PLOTTED_LABEL))
    while ink <= 0 and time.monotonic() < deadline:
        time.sleep(POLL_S)
        ink = page.evaluate(PLOT_INK_JS % json.dumps(PLOTTED_LABEL))
    assert ink > 0, f"the {PLOTTED_LABEL} plot was not drawn (-1: no such plot; 0: an empty canvas)"
    assert page.evaluate(SCROLL_TO_BUTTON_JS % json.dumps("Events"))
    time.sleep(1)  # let the scroll's repaint land in the screenshot
    page.screenshot(tmp_path / "mart_metadata_plots.png")


def test_failed_run_page_shows_the_api_error(
    dagster_ui: DagsterUI, failing_source_run: FailingSourceRun, page: Page, tmp_path: Path
) -> None:
    run_id = failing_source_run.run["runId"]
    text = page.open(f"{dagster_ui.base_url}/runs/{run_id}", "Failure", "HTTP 500", "energy_charts__price")
    assert "upstream database unavailable" in text
    # Narrow the event log as a user would (the filter matches event messages: "Execution of step ... failed."),
    # so the screenshot shows the failed steps with the API's error.
    assert page.evaluate(FOCUS_LOG_FILTER_JS)
    page.call("Input.insertText", text="failed.")
    page.wait_for_text("the filtered run log", ("STEP_FAILURE", "HTTP 500"))
    page.screenshot(tmp_path / "failed_run.png")
