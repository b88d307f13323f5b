"""The report's figures: the trade-off of every variant, and the learning-forgetting frontier.

``tradeoff.png``: left, one point per non-baseline variant at (specialization Δ, generalization
Δ) in percentage points against the baseline, with Newcombe's paired 95% intervals (drawn only
when the run has both kinds of task); right, every variant's accuracy per task with its 95%
Wilson interval. ``frontier.png``: one point per adapter or checkpoint, the checkpoints of one
training run joined in training order, the Pareto front ringed and the best trade-off starred;
left with the generalization task's accuracy, right with the probability of its right answer
among the choices.

Labels are placed where they overlap neither another label nor a point (:func:`place_labels`);
a run whose selection leaves a panel empty does not draw it. Drawn on a bare ``Figure`` with
the Agg canvas: no pyplot, no global state, no display needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from harness.report.analysis import Analysis
from harness.report.frontier import Frontier, frontier_measure_of, roles
from harness.tasks import TASKS


def _finite(*xs) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def _span(high: float, low: float) -> float:
    """An error bar's length in points; never negative (0/n gives a bound of -1e-17)."""
    return max(100 * (high - low), 0.0)


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"] if n <= 10 else colormaps["tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _new_figure(panels: int, width: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, 5.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    return fig, list(axes)


# -- labels that do not overprint --------------------------------------------------------------

_OFFSETS = [
    (8, 6),
    (8, -14),
    (-8, 6),
    (-8, -14),
    (12, -4),
    (-12, -4),
    (0, 12),
    (0, -18),
    (18, 14),
    (18, -22),
    (-18, 14),
    (-18, -22),
    (28, 0),
    (-28, 0),
    (0, 26),
    (0, -30),
]


def place_labels(ax, points: Sequence[tuple[float, float, str, object]]) -> list:
    """Annotate each (x, y, text, color) point where its label's box overlaps no label placed
    before and no point, trying offsets from near to far; returns the text artists."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    placed: list = []
    texts: list = []
    marks = [ax.transData.transform((x, y)) for x, y, _, _ in points]
    for x, y, text, color in points:
        best = None
        for dx, dy in _OFFSETS:
            ha = "left" if dx >= 0 else "right"
            artist = ax.annotate(
                text,
                (x, y),
                textcoords="offset points",
                xytext=(dx, dy),
                fontsize=8,
                color=color,
                ha=ha,
                va="bottom" if dy >= 0 else "top",
            )
            box = artist.get_window_extent(renderer).expanded(1.05, 1.1)
            clash = any(box.overlaps(other) for other in placed) or any(
                box.x0 <= mx <= box.x1 and box.y0 <= my <= box.y1 for mx, my in marks
            )
            if not clash and ax.bbox.contains(box.x0, box.y0) and ax.bbox.contains(box.x1, box.y1):
                best = (artist, box)
                break
            artist.remove()
        if best is None:  # nowhere free: the first offset, and the text says which point it is
            artist = ax.annotate(
                text, (x, y), textcoords="offset points", xytext=_OFFSETS[0], fontsize=8, color=color
            )
            best = (artist, artist.get_window_extent(renderer))
        placed.append(best[1])
        texts.append(best[0])
    return texts


# -- the trade-off of every variant ---------------------------------------------------------------


def plot_tradeoff(analysis: Analysis, path: Path, *, title: str = "") -> Path:
    """Write ``tradeoff.png`` and return its path."""
    spec, gen = roles([s.benchmark for s in analysis.summary if s.benchmark in TASKS])
    by_variant: dict[str, dict] = {}
    for c in analysis.comparisons:
        by_variant.setdefault(c.variant, {})[c.benchmark] = c.paired
    points = {
        v: d for v, d in by_variant.items() if spec in d and gen in d and _finite(d[spec].delta, d[gen].delta)
    }
    summary = [s for s in analysis.summary if not s.errored and s.overall.n > 0]
    variants = sorted({s.variant for s in analysis.summary}, key=lambda v: (v != analysis.baseline, v))
    colors = dict(zip(variants, _colors(len(variants))))
    panels = (1 if points else 0) + (1 if summary else 0)
    fig, axes = _new_figure(max(panels, 1), 12 if panels == 2 else 7)
    if points:  # a point holds both tasks, so neither role is None
        assert spec is not None and gen is not None
        _tradeoff_panel(axes[0], points, spec, gen, analysis.baseline, colors)
    if summary:
        _accuracy_panel(axes[-1], summary, analysis.baseline, colors)
    if not panels:
        axes[0].text(0.5, 0.5, "no variant was scored", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_axis_off()
    if title:
        fig.suptitle(f"Fine-tuning trade-off, run {title}", fontsize=12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _tradeoff_panel(ax, points: dict, spec: str, gen: str, baseline: str, colors: dict) -> None:
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set_xlabel(f"{TASKS[spec].report.title} Δ vs {baseline} (points; > 0: specialization gain)")
    ax.set_ylabel(f"{TASKS[gen].report.title} Δ vs {baseline} (points; < 0: generalization cost)")
    ax.set_title("Trade-off vs baseline (95% paired Newcombe intervals)", fontsize=10)
    span = 0.0
    labels = []
    for variant, d in sorted(points.items()):
        s, m = d[spec], d[gen]
        x, y = 100 * s.delta, 100 * m.delta
        xerr = [[_span(s.delta, s.delta_ci_low)], [_span(s.delta_ci_high, s.delta)]]
        yerr = [[_span(m.delta, m.delta_ci_low)], [_span(m.delta_ci_high, m.delta)]]
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o", ms=7, color=colors[variant], capsize=3, lw=1.2)
        labels.append((x, y, f"{variant} ({x:+.1f}, {y:+.1f})", colors[variant]))
        span = max(
            span,
            *(
                abs(100 * v)
                for v in (s.delta_ci_low, s.delta_ci_high, m.delta_ci_low, m.delta_ci_high)
                if _finite(v)
            ),
        )
    lim = max(5.0, span * 1.25)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.grid(True, lw=0.3, alpha=0.5)
    for x, y, text in [
        (0.98, 0.98, "better on both"),
        (0.98, 0.02, "specializes"),
        (0.02, 0.02, "worse on both"),
        (0.02, 0.98, "generalizes"),
    ]:
        ax.text(
            x,
            y,
            text,
            transform=ax.transAxes,
            ha="right" if x > 0.5 else "left",
            va="top" if y > 0.5 else "bottom",
            fontsize=7.5,
            color="0.6",
            style="italic",
        )
    place_labels(ax, labels)


def _accuracy_panel(ax, summary: Sequence, baseline: str, colors: dict) -> None:
    tasks = [t for t in TASKS if any(s.benchmark == t for s in summary)]
    variants = sorted({s.variant for s in summary}, key=lambda v: (v != baseline, v))
    width = 0.8 / max(len(variants), 1)
    top = 0.0
    for i, variant in enumerate(variants):
        xs, ys, lo, hi = [], [], [], []
        for j, task in enumerate(tasks):
            s = next((s for s in summary if s.variant == variant and s.benchmark == task), None)
            if s is None or not _finite(s.overall.accuracy, s.overall.ci_low, s.overall.ci_high):
                continue
            a = s.overall
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(100 * a.accuracy)
            lo.append(_span(a.accuracy, a.ci_low))
            hi.append(_span(a.ci_high, a.accuracy))
        top = max([top, *(y + h for y, h in zip(ys, hi))])
        if xs:
            ax.bar(
                xs,
                ys,
                width=width * 0.9,
                color=colors[variant],
                alpha=0.85,
                label=variant + (" (baseline)" if variant == baseline else ""),
            )
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor="0.2", capsize=3, lw=1)
    ax.set_xticks(range(len(tasks)), [TASKS[t].report.title for t in tasks], fontsize=8)
    ax.set_ylabel("accuracy (%)")
    for j, task in enumerate(tasks):
        chance = TASKS[task].report.chance
        if chance is not None:
            ax.hlines(100 * chance, j - 0.45, j + 0.45, colors="0.3", linestyles="dashed", lw=1)
            ax.text(j - 0.45, 100 * chance + 0.5, "chance", ha="left", va="bottom", fontsize=7.5, color="0.3")
            top = max(top, 100 * chance)
    ax.set_ylim(0, min(100, max(10.0, top * 1.2)))
    ax.set_title("Accuracy per variant (95% Wilson intervals)", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        # outside the bars, so that it hides neither a bar nor the chance label
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.grid(True, axis="y", lw=0.3, alpha=0.5)


# -- the frontier ---------------------------------------------------------------------------------


def plot_frontier(frontier: Frontier, path: Path, *, baseline: str, title: str = "") -> Path:
    """Write ``frontier.png`` and return its path."""
    with_logp = any(p.continuous is not None for p in frontier.points)
    fig, axes = _new_figure(2 if with_logp else 1, 13 if with_logp else 7.5)
    runs: dict[str, list] = {}
    for p in frontier.points:
        key = p.facts.point if p.facts is not None and p.facts.point else p.variant
        runs.setdefault(key, []).append(p)
    colors = dict(zip(runs, _colors(len(runs))))
    spec = TASKS[frontier.specialization].report.title
    for ax, y_of, ylabel, front_attr, scale in _frontier_panels(axes, frontier, with_logp):
        for run, pts in runs.items():
            _frontier_run(ax, frontier, run, pts, colors[run], y_of, front_attr, scale)
        _frontier_axes(ax, frontier, ylabel, f"{spec} Δ vs {baseline} (points)")
    axes[0].set_title("Accuracy (95% paired intervals)", fontsize=10)
    if with_logp:
        measure = _frontier_measure_title(frontier.generalization)
        axes[1].set_title(f"{measure[:1].upper()}{measure[1:]} (95% paired t intervals)", fontsize=10)
    if title:
        fig.suptitle(f"Learning-forgetting frontier, run {title}", fontsize=12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _frontier_measure_title(task: str) -> str:
    measure = frontier_measure_of(task)
    return measure.title if measure else "continuous measure"


def _frontier_panels(axes, frontier: Frontier, with_logp: bool) -> list[tuple]:
    """(axes, y of a point: value and interval, y label, the front it is on, scale) per panel."""
    gen = TASKS[frontier.generalization].report.title
    panels: list[tuple] = [
        (
            axes[0],
            lambda p: (p.cost.paired.delta, p.cost.paired.delta_ci_low, p.cost.paired.delta_ci_high),
            f"{gen} Δ (points)",
            "on_front",
            100.0,
        )
    ]
    if with_logp:
        panels.append(
            (
                axes[1],
                lambda p: (
                    (p.continuous.delta, p.continuous.ci_low, p.continuous.ci_high)
                    if p.continuous
                    else (math.nan,) * 3
                ),
                f"{gen}: {_frontier_measure_title(frontier.generalization)} Δ (points)",
                "on_front_continuous",
                100.0,
            )
        )
    for ax, *_ in panels:
        ax.axhline(0, color="0.6", lw=0.8)
        ax.axvline(0, color="0.6", lw=0.8)
    return panels


def _frontier_run(
    ax, frontier: Frontier, run: str, pts: list, color, y_of, front_attr: str, scale: float
) -> None:
    """One run's points (its checkpoints, joined in epoch order), each with its two intervals."""
    pts = sorted(pts, key=lambda p: p.facts.epochs_at if p.facts and p.facts.epochs_at else 0.0)
    xs = [100 * p.gain.paired.delta for p in pts]
    ys = [scale * y_of(p)[0] for p in pts]
    ax.plot(xs, ys, "-", color=color, lw=1, alpha=0.6)
    for p, x, y in zip(pts, xs, ys):
        if not _finite(x, y):
            continue
        g = p.gain.paired
        _, y_lo, y_hi = y_of(p)
        size = 4 + 5 * min((p.facts.epochs_at or 1.0) if p.facts else 1.0, 2.0)
        ax.errorbar(
            [x],
            [y],
            xerr=[[_span(g.delta, g.delta_ci_low)], [_span(g.delta_ci_high, g.delta)]],
            yerr=[[max(scale * (y / scale - y_lo), 0)], [max(scale * (y_hi - y / scale), 0)]],
            fmt="o",
            ms=size,
            color=color,
            capsize=2,
            lw=0.8,
            alpha=0.9,
        )
        if getattr(p, front_attr):
            ax.plot([x], [y], "o", ms=size + 7, mfc="none", mec="black", mew=1.2)
        if p.variant == frontier.best:
            ax.plot([x], [y], "*", ms=16, color="gold", mec="black", mew=0.8, zorder=5)
    ax.plot([], [], "o-", color=color, label=run)


def _frontier_axes(ax, frontier: Frontier, ylabel: str, xlabel: str) -> None:
    """The legend's markers, the labels and the grid of one panel."""
    ax.plot([], [], "o", ms=11, mfc="none", mec="black", label="Pareto front")
    if frontier.best is not None:
        ax.plot([], [], "*", ms=12, color="gold", mec="black", label=f"best trade-off ({frontier.best})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, lw=0.3, alpha=0.5)
    ax.legend(
        fontsize=7.5,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0,
        title="run (marker size: epochs)",
        title_fontsize=7.5,
    )
