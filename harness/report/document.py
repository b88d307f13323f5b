"""A run's report on disk: ``report.md``, its figures, then ``results.json``, last.

What each file holds is written elsewhere: harness/report/markdown.py (report.md),
harness/report/figure.py (the figures), harness/report/results_json.py (results.json), from the
numbers of harness/report/analysis.py and the manifest of harness/records/manifest.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.files import atomic_write, write_json
from harness.report.analysis import Analysis
from harness.report.cells import FIGURE_NAME, FRONTIER_NAME
from harness.report.figure import plot_frontier, plot_tradeoff
from harness.report.markdown import render_markdown


def write_report(run_dir: Path, payload: Mapping, analysis: Analysis) -> dict[str, Path]:
    """Write ``report.md`` (which links the figures), the figures, then ``results.json``, last
    and atomically: a folder with ``results.json`` holds a finished report. A failing plot never
    costs the numbers: ``results.json`` is written all the same, then the error raised."""
    run_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    try:
        paths["markdown"] = atomic_write(run_dir / "report.md", render_markdown(payload, analysis))
        paths["figure"] = plot_tradeoff(analysis, run_dir / FIGURE_NAME, title=payload["manifest"]["run_id"])
        if analysis.frontier is not None and analysis.frontier.drawn and analysis.frontier.points:
            paths["frontier"] = plot_frontier(
                analysis.frontier,
                run_dir / FRONTIER_NAME,
                baseline=analysis.baseline,
                title=payload["manifest"]["run_id"],
            )
    finally:
        paths = {"results": write_json(run_dir / "results.json", payload), **paths}
    return paths
