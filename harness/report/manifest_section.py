"""The manifest's section of report.md: what ran where, with which code and libraries, and each
prediction phase."""

from __future__ import annotations

import json
from collections.abc import Mapping

from harness.report.cells import md_escape, table, wall_time


def manifest_section(man: Mapping, exp: Mapping) -> list[str]:
    out = ["", "## Manifest", ""]
    libs = ", ".join(f"{k} {v}" for k, v in man["libraries"].items() if v)
    out += [
        f"- run `{man['run_id']}`, {man['started']} to {man['finished']} ({wall_time(man)})",
        f"- command: `{' '.join(man['command'])}`",
        f"- git commit: `{man['git_commit'] or 'unknown'}`; "
        f"experiment file sha256 `{(exp['sha256'] or 'unknown')[:12]}`",
        f"- Python {man['python']} on {man['platform']} ({man['cpu_count']} CPUs); "
        f"device(s): {', '.join(man['devices']) or 'unknown'}",
        f"- libraries: {libs}",
    ]
    trained = (man.get("bench") or {}).get("training") or []
    if trained:
        out += ["", "Training by this command:", ""]
        out += table(
            ["config", "seconds", "exit"],
            [[f"`{t['config']}`", f"{t['seconds']:.1f}", t["exit"]] for t in trained],
            align="lrr",
        )
    phases = man["phases"]
    models = {v["name"]: v.get("model", "") for v in exp.get("variants", [])}
    if phases:
        out += ["", "Prediction phases (from `phases/*.json`):", ""]
        out += table(
            [
                "phase",
                "model",
                "adapter",
                "load",
                "template",
                "seed",
                "prompts",
                "cached",
                "computed",
                "seconds",
                "device",
            ],
            [[name, *_phase_cells(p, models)] for name, p in sorted(phases.items())],
            align="lllllrrrrrl",
        )
    return out


def _phase_cells(p: Mapping, models: Mapping[str, str] | None = None) -> list:
    if "unreadable" in p:
        return ["unreadable: " + md_escape(p["unreadable"]), *[""] * 9]
    fp: Mapping = p["fingerprint"] if isinstance(p.get("fingerprint"), dict) else {}

    def short(v):
        return "–" if v in (None, "") else md_escape(v if isinstance(v, str) else json.dumps(v))[:60]

    template = p.get("template", p.get("kind", ""))
    if p.get("template_version") not in (None, ""):
        template = f"{template} v{p['template_version']}"
    seconds = p.get("seconds")
    name = (models or {}).get(str(p.get("variant")), "")
    model = f"{md_escape(name)} (`{short(fp.get('model'))}`)" if name else short(fp.get("model"))
    return [
        model,
        short(fp.get("adapter")),
        short(fp.get("load")),
        short(template),
        short(p.get("seed")),
        short(p.get("n_prompts")),
        short(p.get("cached")),
        short(p.get("computed")),
        f"{seconds:.1f}" if isinstance(seconds, (int, float)) else "–",
        short(p.get("device")),
    ]
