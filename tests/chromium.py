"""A report page as a person sees it: real headless Chromium at a 1280 px wide window, asked
(by a script added to a copy of the page) whether the page scrolls sideways, whether every
image loaded, and what a click on a column header does to the table's order."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

WIDTH = 1280
# Runs at the page's load: measures, clicks the first numeric header of the first table that
# has one twice (ascending, then descending), and writes what it saw into <pre id="seen">.
PROBE = """
<script>
window.addEventListener("load", () => {
  const root = document.documentElement;
  const boxes = [...document.querySelectorAll(".scroll")];
  const seen = {
    innerWidth: window.innerWidth,
    scrollWidth: root.scrollWidth,
    tablesScrolling: boxes.filter((box) => box.scrollWidth > box.clientWidth + 1).length,
    tables: boxes.length,
    images: [...document.images].map((img) => img.complete && img.naturalWidth > 0),
    contents: [...document.querySelectorAll("nav.contents a")].map((a) => a.getAttribute("href")),
    headings: [...document.querySelectorAll("h2[id]")].map((h) => "#" + h.id),
  };
  const table = [...document.querySelectorAll("table.sortable")]
    .find((t) => t.querySelector("th.num"));
  if (table) {
    const th = table.querySelector("th.num");
    const column = [...th.parentNode.cells].indexOf(th);
    const values = () => [...table.tBodies[0].rows].map((r) => r.cells[column].dataset.sort);
    seen.sortColumn = th.textContent;
    th.click();
    seen.ascending = values();
    th.click();
    seen.descending = values();
  }
  const out = document.createElement("pre");
  out.id = "seen";
  out.textContent = JSON.stringify(seen);
  document.body.append(out);
});
</script>
"""


def chromium() -> str:
    """Chromium's path; installed with apt where that is possible, else the test skips."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if shutil.which("apt-get") and os.geteuid() == 0:
        install = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True, text=True
        )
        if install.returncode == 0 and shutil.which("chromium"):
            return shutil.which("chromium")  # type: ignore[return-value]
    pytest.skip("no headless Chromium: apt-get install chromium (needs root and apt)")


def seen_in_chromium(page: Path, tmp_path: Path) -> dict[str, Any]:
    """Open a copy of `page` (beside it, so its links resolve alike) in headless Chromium at
    1280 px and return what the probe saw."""
    probe = page.with_name(f".probe-{tmp_path.name}.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    try:
        dom = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--hide-scrollbars", f"--window-size={WIDTH},900", "--virtual-time-budget=10000",
             "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        probe.unlink()
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="seen">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stdout[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def assert_reads_at_1280(seen: dict[str, Any]) -> None:
    """No sideways scrolling (of the page or of any table), every image loaded, a contents
    list whose every entry reaches its section, and a header click that sorts by value."""
    assert seen["innerWidth"] == WIDTH
    assert seen["scrollWidth"] <= WIDTH, seen
    assert seen["tablesScrolling"] == 0, seen
    assert seen["images"] and all(seen["images"]), seen["images"]
    assert seen["contents"] and seen["contents"] == seen["headings"]
    numbers = [float(v) for v in seen["ascending"] if v not in ("nan", "")]
    assert numbers == sorted(numbers) and len(numbers) >= 2, seen
    descending = [float(v) for v in seen["descending"] if v not in ("nan", "")]
    assert descending == sorted(numbers, reverse=True)
