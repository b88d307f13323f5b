"""The trade-off figure: what fine-tuning buys on Spider against what it costs on MMLU.

Left panel: one point per non-baseline variant at (Spider Δ, MMLU Δ) in percentage points
against the baseline, on the items both scored, with Newcombe's paired-difference 95%
intervals as error bars (harness/report.py, ``paired_difference_ci``). Right panel: every
variant's absolute accuracy per benchmark with its 95% Wilson interval.

Drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas: no pyplot, no global state,
no display needed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

BENCHMARK_LABELS = {"spider": "Spider execution accuracy", "mmlu": "MMLU accuracy"}


def _finite(*xs: float) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def plot_tradeoff(summary: Sequence, comparisons: Sequence, path: Path, *, baseline: str, title: str = "") -> Path:
    """Write the two-panel PNG to ``path`` and return it.

    ``summary``: report.PairSummary rows; ``comparisons``: report.Comparison rows against
    ``baseline``. A variant that lacks either benchmark's comparison is left out of the left
    panel (the panel says so).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    variants = sorted({s.variant for s in summary} | {c.variant for c in comparisons}, key=lambda v: (v != baseline, v))
    colors = dict(zip(variants, _colors(len(variants))))  # one color per variant in both panels
    _tradeoff_panel(left, comparisons, baseline, colors)
    _accuracy_panel(right, summary, baseline, colors)
    if title:
        fig.suptitle(f"Fine-tuning trade-off, run {title}", fontsize=12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _tradeoff_panel(ax, comparisons: Sequence, baseline: str, colors: dict) -> None:
    by_variant: dict[str, dict] = {}
    for c in comparisons:
        by_variant.setdefault(c.variant, {})[c.benchmark] = c.paired
    points = {v: d for v, d in by_variant.items() if "spider" in d and "mmlu" in d
              and _finite(d["spider"].delta, d["mmlu"].delta)}
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set_xlabel(f"Spider accuracy Δ vs {baseline} (points; > 0: specialization gain)")
    ax.set_ylabel(f"MMLU accuracy Δ vs {baseline} (points; < 0: generalization cost)")
    ax.set_title("Trade-off vs baseline (95% paired Newcombe intervals)", fontsize=10)
    if not points:
        ax.text(0.5, 0.5, "no variant ran both benchmarks\nalongside the baseline",
                ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.set_xlim(-10, 10)
        ax.set_ylim(-10, 10)
        return
    span = 0.0
    for variant, d in sorted(points.items()):
        color = colors[variant]
        s, m = d["spider"], d["mmlu"]
        x, y = 100 * s.delta, 100 * m.delta
        xerr = [[_span(s.delta, s.delta_ci_low)], [_span(s.delta_ci_high, s.delta)]]
        yerr = [[_span(m.delta, m.delta_ci_low)], [_span(m.delta_ci_high, m.delta)]]
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o", ms=7, color=color, capsize=3, lw=1.2)
        ax.annotate(f"{variant}\n({x:+.1f}, {y:+.1f})", (x, y), textcoords="offset points", xytext=(8, 6),
                    fontsize=8, color=color)
        span = max(span, abs(100 * s.delta_ci_low), abs(100 * s.delta_ci_high),
                   abs(100 * m.delta_ci_low), abs(100 * m.delta_ci_high))
    lim = max(5.0, span * 1.15)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    for x, y, text in [(0.98, 0.98, "better on both"), (0.98, 0.02, "specializes:\nSpider up, MMLU down"),
                       (0.02, 0.02, "worse on both"), (0.02, 0.98, "generalizes:\nSpider down, MMLU up")]:
        ax.text(x, y, text, transform=ax.transAxes, ha="right" if x > 0.5 else "left",
                va="top" if y > 0.5 else "bottom", fontsize=7.5, color="0.55", style="italic")
    ax.grid(True, lw=0.3, alpha=0.5)


def _accuracy_panel(ax, summary: Sequence, baseline: str, colors: dict) -> None:
    benchmarks = [b for b in ("spider", "mmlu") if any(s.benchmark == b for s in summary)]
    benchmarks += sorted({s.benchmark for s in summary} - set(benchmarks))
    variants = sorted({s.variant for s in summary}, key=lambda v: (v != baseline, v))
    width = 0.8 / max(len(variants), 1)
    top = 0.0
    for i, variant in enumerate(variants):
        xs, ys, lo, hi = [], [], [], []
        for j, b in enumerate(benchmarks):
            s = next((s for s in summary if s.variant == variant and s.benchmark == b), None)
            if s is None or not _finite(s.overall.accuracy, s.overall.ci_low, s.overall.ci_high):
                continue
            a = s.overall
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(100 * a.accuracy)
            lo.append(_span(a.accuracy, a.ci_low))
            hi.append(_span(a.ci_high, a.accuracy))
        top = max([top, *(y + h for y, h in zip(ys, hi))])
        if xs:
            ax.bar(xs, ys, width=width * 0.9, color=colors[variant], alpha=0.85,
                   label=variant + (" (baseline)" if variant == baseline else ""))
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor="0.2", capsize=3, lw=1)
    ax.set_xticks(range(len(benchmarks)), [BENCHMARK_LABELS.get(b, b) for b in benchmarks])
    ax.set_ylabel("accuracy (%)")
    if "mmlu" in benchmarks:  # four choices: 25% is chance
        j = benchmarks.index("mmlu")
        ax.hlines(25, j - 0.45, j + 0.45, colors="0.3", linestyles="dashed", lw=1)
        ax.text(j + 0.45, 25.5, "chance", ha="right", va="bottom", fontsize=7.5, color="0.3")
        top = max(top, 25)
    ax.set_ylim(0, min(100, max(10.0, top * 1.2)))
    ax.set_title("Accuracy per variant (95% Wilson intervals)", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper right")
    ax.grid(True, axis="y", lw=0.3, alpha=0.5)


def _span(high: float, low: float) -> float:
    """An error bar's length in points; never negative (0/n gives a bound of -1e-17)."""
    return max(100 * (high - low), 0.0)


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]
