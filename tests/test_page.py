"""The report page's formatting: numbers for people (percent to the precision the spread
justifies, scientific notation for small values, p-values), tables in Markdown and HTML with
links and sort keys, and the contents list."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.page import Difference, Estimate, Page, cell_text, folder_link, sort_key


@pytest.mark.parametrize(
    ("estimate", "text"),
    [
        (Estimate(0.89123, 0.0031, 3, percent=True), "89.12 ± 0.31 % (3)"),
        (Estimate(0.861, 0.011, 3, percent=True), "86.1 ± 1.1 % (3)"),  # a wide spread: fewer
        (Estimate(0.9, math.nan, 1, percent=True), "90.00 % (1)"),
        (Estimate(0.9, 0.0, 3, percent=True), "90.00 ± 0.00 % (3)"),  # no spread: the default
        (Estimate(0.41234, 0.0031, 3), "0.4123 ± 0.0031 (3)"),  # a loss: no percent
        (Estimate(math.nan, math.nan, 0), "-"),
    ],
)
def test_a_mean_shows_the_precision_its_spread_justifies(estimate: Estimate, text: str) -> None:
    assert str(estimate) == text


def test_a_difference_shows_its_interval_in_points_for_an_accuracy() -> None:
    assert str(Difference(0.0041, 0.0018, 0.0064, percent=True)) == "+0.41 [+0.18, +0.64] pp"
    assert str(Difference(-0.01, -0.042, 0.022, percent=True)) == "-1.0 [-4.2, +2.2] pp"
    assert str(Difference(0.0125, 0.0125, 0.0125, percent=True)) == "+1.25 [+1.25, +1.25] pp"
    assert str(Difference(0.5, math.nan, math.nan)) == "+0.5000"


@pytest.mark.parametrize(
    ("value", "column", "text"),
    [
        (1e-4, "regularization.weight_decay", "1e-4"),  # as the command line writes it
        (0.0031623, "optimizer.lr", "3.16e-3"),
        (0.1, "regularization.noise_std", "0.1"),
        (0.0, "regularization.weight_decay", "0"),
        (61706.0, "params", "61,706"),
        (10360.5, "images/s (mean)", "10,360"),
        (0.8912, "test_accuracy", "89.12 %"),
        (0.00012, "p", "< 0.001"),
        (0.0412, "p_holm", "0.041"),
        (0.0, "p", "0"),
        (12.345, "train_seconds", "12.3"),
    ],
)
def test_numbers_are_written_for_people(value: float, column: str, text: str) -> None:
    assert cell_text(value, column) == text


def test_a_table_keeps_its_numbers_behind_the_text_for_sorting() -> None:
    assert sort_key(Estimate(0.8, 0.01, 3, True)) == repr(0.8)
    assert sort_key(1e-4) == repr(1e-4)  # "1e-4" sorts by its value, not its text
    assert sort_key("lenet5") == "lenet5"


def test_a_page_has_a_contents_list_and_links_rows_to_run_folders(tmp_path: Path) -> None:
    out = tmp_path / "sweep" / "report"
    run = tmp_path / "sweep" / "lr=0.01,seed=0"
    page = Page("Report: sweep", header=["Made by `python analysis/report.py sweep`."])
    page.heading("In short")
    page.text("- `lr=0.01`: higher")
    page.heading("In short")  # the same heading twice: two anchors
    frame = pd.DataFrame({"optimizer.lr": [0.01, 1e-4], "run": [folder_link(run, out), "-"]})
    page.table(frame, "each row links its run")
    markdown, html = page.markdown(), page.html()
    assert "| optimizer.lr | run |\n|---:|:---|" in markdown
    assert "| 1e-4 | - |" in markdown
    assert "[lr=0.01,seed=0](../lr=0.01,seed=0/)" in markdown
    assert '<a href="#in-short">In short</a>' in html and '<a href="#in-short-2">' in html
    assert '<h2 id="in-short-2">' in html
    assert '<a href="../lr=0.01,seed=0/">' in html
    assert '<td class="num short" data-sort="0.0001">1e-4</td>' in html
    assert "<li><code>lr=0.01</code>: higher</li>" in html
    assert "Made by <code>python analysis/report.py sweep</code>." in html
