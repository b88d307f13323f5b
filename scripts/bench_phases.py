"""Each phase of a bench run against its compute floor: how far from the hardware's limit is it?

Reads what a run already recorded (the adapter's ``training_summary.json`` and the run's
``phases/*.json``, written by ``harness bench``), measures this machine's matrix-multiply rate
(bf16 on a GPU, fp32 on a CPU), and prints, per phase: tokens processed, seconds, tokens/s, the
FLOP-bound floor for that work (2 x parameters x tokens for inference, 6 x for training, over the
measured rate) and the ratio measured time / floor (1.0 would be the hardware's limit).

    python scripts/bench_phases.py                                   # the newest reports/<run-id>
    python scripts/bench_phases.py --run-dir reports/<run-id> --adapter adapters/paper_full --json out.json

Only phases that computed something count (a phase read from the cache took no compute). The
parameter count is the whole model's (embeddings counted once, as the tied output projection
that every scored position multiplies by); the floor is therefore a bound on the dense work,
not on what padding, attention over long prompts or kernel launches add.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.models.loading import resolve_model


def matmul_rate(device: str, size: int | None = None, reps: int = 10) -> tuple[float, str]:
    """FLOP/s of a square matrix product on ``device``: bf16 on CUDA, fp32 on CPU."""
    import torch

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    n = size or (8192 if device == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return 2 * n**3 * reps / seconds, f"{str(dtype).removeprefix('torch.')} {n}x{n}x{n}"


def parameter_count(model_name: str) -> int:
    """Parameters of ``model_name``, counted on the meta device (no weights are read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    resolved = resolve_model(model_name)
    config = AutoConfig.from_pretrained(resolved.path, gguf_file=resolved.gguf_file)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def phase_rows(run_dir: Path, adapters: list[Path]) -> list[dict]:
    """One row per phase that computed: name, tokens, seconds, FLOP factor (2 or 6)."""
    rows = []
    for adapter in adapters:
        summary_path = adapter / "training_summary.json"
        if not summary_path.is_file():
            continue
        summary = json.loads(summary_path.read_text())
        # The training loop alone (train_time_s, tokens_seen): the model's download, conversion,
        # loading and saving are not training work, and wall_time_s counts them.
        if "train_time_s" not in summary or "tokens_seen" not in summary:
            print(
                f"{summary_path}: no train_time_s/tokens_seen (not a training summary?); skipped",
                file=sys.stderr,
            )
            continue
        tokens, seconds = summary["tokens_seen"], summary["train_time_s"]
        rows.append(
            {
                "phase": f"training {adapter.name}",
                "tokens": int(tokens),
                "seconds": float(seconds),
                "factor": 6,
                "model": summary["base_model"]["name"],
            }
        )
    # Under pytest-xdist each worker records its own shard (<benchmark>-<variant>.gwK.json);
    # the shards ran at the same time, so a phase's tokens add up and its time is the longest.
    merged: dict[tuple[str, str, str], dict] = {}
    for path in sorted((run_dir / "phases").glob("*.json")):
        phase = json.loads(path.read_text())
        if not phase.get("computed"):
            continue
        tokens = phase.get("prompt_tokens", 0) + phase.get("new_tokens", 0)
        if not tokens:
            print(f"{path}: no token counts (recorded by an older harness); skipped", file=sys.stderr)
            continue
        # A task may send the engine several kinds of request (Spider: generation, then the
        # adapter's KL to the base, which runs the base and the adapted model over each text).
        kind = phase.get("kind") or (
            "generation"
            if "new_tokens" in phase and phase.get("task", phase.get("benchmark")) != "mmlu"
            else f"{phase.get('scoring', 'loglik')} scoring"
        )
        row = merged.setdefault(
            (phase.get("task", phase.get("benchmark")), kind, phase["variant"]),
            {
                "phase": f"{phase.get('task', phase.get('benchmark'))} {kind} {phase['variant']}",
                "tokens": 0,
                "seconds": 0.0,
                "factor": 4 if kind == "kl_to_base" else 2,
                "computed": 0,
                "workers": 0,
            },
        )
        row["tokens"] += tokens
        row["computed"] += phase["computed"]
        row["seconds"] = max(row["seconds"], phase["seconds"])
        row["workers"] += 1
    return rows + list(merged.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", default=None, help="reports/<run-id> (default: the newest under reports/)")
    p.add_argument(
        "--adapter",
        action="append",
        default=[],
        help="adapter folder(s) with training_summary.json (repeatable)",
    )
    p.add_argument("--model", default="smollm2-135m-instruct", help="the base model, for its parameter count")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--json", default=None, help="also write the table here")
    p.add_argument(
        "--flops",
        type=float,
        default=None,
        help="the matmul rate (FLOP/s) of the machine the run was on, when reading its records "
        "elsewhere (e.g. 785.6e12, measured on an H200); default: measure this machine's",
    )
    args = p.parse_args(argv)

    import torch

    if args.run_dir:
        run_dir = Path(args.run_dir)
    else:
        runs = [d for d in Path("reports").glob("*") if (d / "phases").is_dir()]
        if not runs:
            sys.exit(
                "bench_phases: no run with phase records under reports/; "
                "run the benchmarks first or pass --run-dir"
            )
        run_dir = max(runs, key=lambda d: d.stat().st_mtime)
    if not (run_dir / "phases").is_dir():
        sys.exit(f"bench_phases: {run_dir} has no phases/ folder (is it a reports/<run-id> folder?)")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rate, shape = (args.flops, "given with --flops") if args.flops else matmul_rate(device)
    params = parameter_count(args.model)
    here = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    name = "the run's machine" if args.flops else here
    print(
        f"run {run_dir}; {name}: {rate / 1e12:.1f} TFLOP/s measured ({shape} matmul); "
        f"{args.model}: {params / 1e6:.1f}M parameters"
    )
    rows = phase_rows(run_dir, [Path(a) for a in args.adapter])
    print(f"{'phase':<34} {'tokens':>11} {'seconds':>8} {'tokens/s':>10} {'floor s':>8} {'x floor':>8}")
    for r in rows:
        r["tokens_per_s"] = r["tokens"] / r["seconds"] if r["seconds"] else 0.0
        r["floor_s"] = r["factor"] * params * r["tokens"] / rate
        r["times_floor"] = r["seconds"] / r["floor_s"] if r["floor_s"] else 0.0
        print(
            f"{r['phase']:<34} {r['tokens']:>11,} {r['seconds']:>8.1f} {r['tokens_per_s']:>10,.0f} "
            f"{r['floor_s']:>8.2f} {r['times_floor']:>8.1f}"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "run_dir": str(run_dir),
                    "device": name,
                    "flops_per_s": rate,
                    "matmul": shape,
                    "parameters": params,
                    "phases": rows,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
