"""The GPU path at the scale users run, against its hardware floor: a model shaped like
Mistral-7B-Instruct-v0.2 (random weights, scripts/build_7b_shaped.py) through the harness's own
commands, and the baselines users would otherwise run, in one call.

    python scripts/bench_gpu_7b.py all --out docs/gpu_7b/run --tokenizer tok/   # every step below
    python scripts/bench_gpu_7b.py table --out docs/gpu_7b/run                 # the table again

Steps (each writes ``<out>/<step>.json``; ``all`` runs them in order and goes on past a failed one):

* ``peaks``: this card's bf16 matrix-product rate (8192^3, median of CUDA-event timings) and its
  device-memory bandwidth (a 2 GiB copy, bytes read plus written): the two ceilings of the floors.
* ``build``: the 7B-shaped folder.
* ``train``: our QLoRA (``python -m training --config training/configs/mistral7b.toml``) for
  ``--steps`` steps of 32 examples, its peak GPU memory (torch's allocator, in the process).
* ``trl``: a plain TRL ``SFTTrainer`` QLoRA script (scripts/baseline_trl_qlora.py) on the same
  examples with the same settings.
* ``bench``: ``harness bench --experiment experiments/mistral7b.toml --model <folder>`` with
  ``--limit spider=<n>`` and the paper's 150 MMLU questions; its phase records.
* ``decode``: one Spider batch of 64 (128 new tokens) three ways: plain batched ``generate``, our
  ``model.generate`` path, our static-cache path; ms a step, texts compared, each difference's
  top-2 logit gap (a near-tie of bf16 logits or not).
* ``lmeval``: scripts/bench_mmlu_vs_lmeval.py (ours against lm-evaluation-harness's HF backend,
  same model object, same questions), when lm_eval imports.
* ``table``: one row per phase: tokens/s, the floor (6N or 2N FLOPs a token at the measured peak;
  weight bytes a decoding step at the measured bandwidth), the fraction of it, peak GPU memory.

GPU memory and utilisation are sampled with nvidia-smi every 250 ms during each step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = ("peaks", "build", "train", "bench", "decode", "trl", "lmeval", "table")
ADAPTER = "adapters/mistral7b"  # experiments/mistral7b.toml's ft variants read it
NEAR_TIE = 0.125  # logits: top-2 gap under this is a near-tie (bf16 spacing at |logit| 16-32)


# -- helpers ---------------------------------------------------------------------------------------


class GpuSampler:
    """nvidia-smi's memory.used and utilization.gpu every 250 ms while the block runs."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        try:
            self.proc = subprocess.Popen(
                [
                    "nvidia-smi",
                    "--query-gpu=memory.used,utilization.gpu",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "250",
                ],
                stdout=open(self.path, "w"),
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            self.proc = None
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()

    def summary(self) -> dict:
        rows = []
        for line in self.path.read_text().splitlines() if self.path.is_file() else []:
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and all(p.isdigit() for p in parts):
                rows.append((int(parts[0]), int(parts[1])))
        if not rows:
            return {}
        util = [u for _, u in rows]
        return {
            "smi_peak_mib": max(m for m, _ in rows),
            "smi_util_mean_pct": round(statistics.mean(util), 1),
            "smi_busy_share": round(sum(u > 0 for u in util) / len(util), 3),
            "smi_samples": len(rows),
        }


def _run(
    cmd: list[str], log: Path, env: dict | None = None, timeout: float | None = None
) -> tuple[int, float]:
    start = time.perf_counter()
    with open(log, "w") as f:
        try:
            rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT, timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = 124
    return rc, time.perf_counter() - start


def _save(out: Path, step: str, data: dict) -> dict:
    (out / f"{step}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    return data


def _load(out: Path, step: str) -> dict:
    path = out / f"{step}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def weight_counts(config) -> dict:
    """Parameters of the model, and of its decoder layers' linear projections (what nf4 packs)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    linear = sum(
        m.weight.numel()
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and ".layers." in name
    )
    return {"parameters": total, "linear_in_layers": linear}


def weight_bytes(counts: dict, load: str) -> float:
    """Bytes of weights a decoding step reads: bf16 everywhere, or nf4 projections (4 bits, one
    8-bit absmax per 64 with double quantisation) and bf16 for the rest."""
    if load == "nf4":
        linear = counts["linear_in_layers"]
        return linear * 0.5 + linear / 64 + (counts["parameters"] - linear) * 2
    return counts["parameters"] * 2


# -- steps -----------------------------------------------------------------------------------------


def step_peaks(args) -> dict:
    import torch

    def median_ms(fn, reps=20):
        for _ in range(3):
            fn()
        times = []
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        return statistics.median(times)

    n = 8192
    x = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    y = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    mm = median_ms(lambda: torch.matmul(x, y))
    src = torch.randn(1 << 30, device="cuda", dtype=torch.bfloat16)  # 2 GiB
    dst = torch.empty_like(src)
    cp = median_ms(lambda: dst.copy_(src))
    return {
        "device": torch.cuda.get_device_name(),
        "bf16_flops": 2 * n**3 / (mm / 1e3),
        "matmul": f"bf16 {n}x{n}x{n}, median of 20",
        "bandwidth_bytes_s": 2 * src.numel() * 2 / (cp / 1e3),
        "copy": "2 GiB device-to-device, bytes read + written, median of 20",
    }


def step_build(args) -> dict:
    rc, seconds = _run(
        [sys.executable, "scripts/build_7b_shaped.py", "--out", args.model_dir]
        + (["--tokenizer", args.tokenizer] if args.tokenizer else []),
        args.out / "build.log",
    )
    facts_path = Path(args.model_dir) / "shaped_model.json"
    facts = json.loads(facts_path.read_text()) if facts_path.is_file() else {}
    return {"exit": rc, "wall_s": round(seconds, 1), **facts}


def _training_overrides(args) -> list[str]:
    return [f"model={args.model_dir}", f"max_steps={args.steps}", f"data.max_examples={args.steps * 32}"]


def step_train(args) -> dict:
    import shutil

    shutil.rmtree(ROOT / ADAPTER, ignore_errors=True)
    cmd = [sys.executable, __file__, "_train", "--out", str(args.out), "--"]
    cmd += ["--config", "training/configs/mistral7b.toml", "--output", ADAPTER, *_training_overrides(args)]
    with GpuSampler(args.out / "train.smi") as smi:
        rc, seconds = _run(cmd, args.out / "train.log")
    summary_path = ROOT / ADAPTER / "training_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    child = _load(args.out, "_train")
    return {
        "exit": rc,
        "wall_s": round(seconds, 1),
        "command": "python -m training --config training/configs/mistral7b.toml "
        + " ".join(_training_overrides(args)),
        "tokens": summary.get("tokens_seen"),
        "seconds": summary.get("train_time_s"),
        "steps": summary.get("steps_done", summary.get("steps")),
        "final_loss": summary.get("final_loss"),
        **child,
        **smi.summary(),
    }


def step_train_child(args, rest: list[str]) -> int:
    """In the training process itself: run it, then record torch's peak GPU memory."""
    import torch

    from training._cli import main

    rc = main(rest)
    _save(
        args.out,
        "_train",
        {
            "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
        },
    )
    return rc


def step_trl(args) -> dict:
    cmd = [
        sys.executable,
        "scripts/baseline_trl_qlora.py",
        "--model",
        args.model_dir,
        "--examples",
        str(args.steps * 32),
        "--max-steps",
        str(args.steps),
        "--json",
        str(args.out / "_trl.json"),
    ]
    with GpuSampler(args.out / "trl.smi") as smi:
        rc, seconds = _run(cmd, args.out / "trl.log")
    return {
        "exit": rc,
        "wall_s": round(seconds, 1),
        "command": " ".join(cmd[1:]),
        **_load(args.out, "_trl"),
        **smi.summary(),
    }


def step_bench(args) -> dict:
    import shutil

    run_id = "m7b"
    shutil.rmtree(ROOT / "reports" / run_id, ignore_errors=True)
    # Every variant on the 7B-shaped folder: `--model` would change only the variants without an
    # adapter (an adapter stays on the base it was trained on), so the experiment is copied with
    # its model replaced; its relative paths are the repository's, as the original's.
    experiment = Path(args.out) / "mistral7b_shaped.toml"
    experiment.write_text(
        (ROOT / "experiments" / "mistral7b.toml")
        .read_text()
        .replace('"mistralai/Mistral-7B-Instruct-v0.2"', json.dumps(str(args.model_dir)))
    )
    cmd = [sys.executable, "-m", "harness.cli", "bench", "--experiment", str(experiment)]
    if not (ROOT / ADAPTER / "adapter_config.json").is_file():
        cmd += ["--variant", "base", "--variant", "base-nf4"]  # no adapter: the base variants only
    cmd += ["--limit", f"spider={args.spider}", "--run-id", run_id]
    with GpuSampler(args.out / "bench.smi") as smi:
        rc, seconds = _run(cmd, args.out / "bench.log")
    phases = []
    for path in sorted((ROOT / "reports" / run_id / "phases").glob("*.json")):
        p = json.loads(path.read_text())
        phases.append(
            {
                k: p.get(k)
                for k in (
                    "task",
                    "variant",
                    "kind",
                    "computed",
                    "seconds",
                    "prompt_tokens",
                    "new_tokens",
                    "device",
                )
            }
            | {"merged": (p.get("fingerprint") or {}).get("merged")}
            | ({"task": p["benchmark"]} if "benchmark" in p else {})  # phase records before schema 3
        )
    report = ROOT / "reports" / run_id / "report.md"
    if report.is_file():
        shutil.copy(report, args.out / "bench_report.md")
    return {
        "exit": rc,
        "wall_s": round(seconds, 1),
        "command": "harness bench " + " ".join(cmd[3:]),
        "phases": phases,
        **smi.summary(),
    }


def _spider_batch(tokenizer, n: int, batch: int) -> list[str]:
    """A batch of Spider prompts from the middle of the length-sorted selection (the engine's order)."""
    from harness.tasks.spider import SpiderSettings, generation_prompts, load_spider_data
    from harness.tasks.sql_prompts import get_spider_template

    data = load_spider_data(SpiderSettings(limit=n, template="schema"), seed=0)
    prompts = list(
        generation_prompts(data.items, data.context, get_spider_template("schema"), 0, 0, tokenizer).values()
    )
    prompts.sort(key=lambda p: len(tokenizer(p, add_special_tokens=False)["input_ids"]))
    mid = max(0, len(prompts) // 2 - batch // 2)
    return prompts[mid : mid + batch]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _timed(fn):
    import torch

    if _cuda():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if _cuda():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def _reset_peak() -> None:
    import torch

    if _cuda():
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if _cuda() else 0.0


def _near_tie_gaps(model, tokenizer, prompts, ours, theirs) -> list[dict]:
    """For each row whose texts differ: the top-2 logit gap where their tokens part."""
    import torch

    gaps = []
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a == b:
            continue
        ta = tokenizer(a, add_special_tokens=False)["input_ids"]
        tb = tokenizer(b, add_special_tokens=False)["input_ids"]
        k = 0
        while k < min(len(ta), len(tb)) and ta[k] == tb[k]:
            k += 1
        ids = tokenizer(prompts[i], add_special_tokens=False)["input_ids"] + tb[:k]
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0, -1].float()
        top = torch.topk(logits, 2).values.tolist()
        gaps.append({"row": i, "token": k, "gap": round(top[0] - top[1], 4), "top": round(top[0], 3)})
    return gaps


def step_decode(args) -> dict:
    import torch

    from harness.engine import static_decoding
    from harness.engine.core import GenerationSettings
    from harness.engine.decoding import generate_batch
    from harness.engine.static_decoding import generate_static
    from harness.models.loading import ResolvedModel, load_base_model, load_tokenizer
    from harness.tasks.sql_task import SQL_END

    resolved = ResolvedModel(args.model_dir, args.model_dir, None, "shaped")
    tok = load_tokenizer(resolved)
    device = "cuda" if _cuda() else "cpu"  # the CPU: only to check the step on a tiny model
    model = load_base_model(resolved, "bf16" if device == "cuda" else "fp32", device)
    prompts = _spider_batch(tok, args.spider, 64)
    lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    new = 128
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    result = {
        "rows": len(prompts),
        "max_new_tokens": new,
        "prompt_tokens_mean": statistics.mean(lengths),
        "padded_length": enc["input_ids"].shape[1],
    }

    def plain(n):
        with torch.inference_mode():
            return model.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)

    def dynamic(stop, n=new):
        steps = []
        os.environ["HARNESS_DECODING"] = "dynamic"
        texts = generate_batch(
            model, tok, prompts, GenerationSettings(n, 64, stop), on_step=lambda k, f: steps.append(k)
        )
        os.environ["HARNESS_DECODING"] = "auto"
        return texts, max(steps, default=0)

    def static(stop, n=new, **kw):
        steps = []
        texts = generate_static(
            model, tok, prompts, max_new_tokens=n, stop=stop, on_step=lambda k, f: steps.append(k), **kw
        )
        return texts, max(steps, default=0)

    def timed(name, fn):
        _reset_peak()
        (out, seconds) = _timed(fn)
        steps = out[1] if isinstance(out, tuple) else out.shape[1] - enc["input_ids"].shape[1]
        result[name] = {"seconds": seconds, "steps": steps, "peak_gib": _peak_gib()}
        if "static" in name:
            result[name]["run"] = dict(static_decoding.last_run)
        return out

    # Every path for all 128 steps (no stop rule; plain generate has none): the step's cost.
    plain(4)
    timed("hf_generate_first", lambda: plain(new))
    timed("hf_generate", lambda: plain(new))
    timed("ours_dynamic", lambda: dynamic(None))
    timed("ours_static_first", lambda: static(None))  # includes the capture's warm-up
    free, _ = timed("ours_static", lambda: static(None))
    os.environ["HARNESS_GQA_DECODE"] = "0"  # transformers' SDPA, which repeats the cache's heads
    timed("ours_static_repeat_kv", lambda: static(None))
    os.environ["HARNESS_GQA_DECODE"] = "1"
    # With the SQL stop rule, as the benchmark runs: steps each path took, texts compared.
    dyn, _ = timed("ours_dynamic_sql_stop", lambda: dynamic(SQL_END))
    sta, _ = timed("ours_static_sql_stop", lambda: static(SQL_END))
    result["identical"] = sum(a == b for a, b in zip(sta, dyn))
    result["identical_without_stop_rule"] = sum(a == b for a, b in zip(free, dynamic(None)[0]))
    gaps = _near_tie_gaps(model, tok, prompts, sta, dyn)
    result["differences"] = gaps
    result["differences_all_near_ties"] = all(g["gap"] < NEAR_TIE for g in gaps)
    result["chars_static"] = [len(t) for t in sta]
    result["chars_dynamic"] = [len(t) for t in dyn]
    counts = weight_counts(model.config)
    result["weight_bytes"] = weight_bytes(counts, "bf16")
    config = model.config
    kv_per_token = config.num_hidden_layers * 2 * config.num_key_value_heads * config.head_dim * 2
    result["kv_bytes_last_step"] = kv_per_token * len(prompts) * (enc["input_ids"].shape[1] + new)
    if device == "cuda":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            static(None, n=9, graphs=False)
            torch.cuda.synchronize()
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=25)
        (args.out / "decode_profile.txt").write_text(table)
        kernels = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
        result["eager_static_kernel_ms_per_step"] = sum(e.self_device_time_total for e in kernels) / 9 / 1e3
        # The same comparison at fp32 (the reference numerics): are the bf16 differences noise?
        del model
        torch.cuda.empty_cache()
        model = load_base_model(resolved, "fp32", device)
        a, _ = static(None, n=32)
        b, _ = dynamic(None, n=32)
        result["fp32_identical_32_tokens"] = sum(x == y for x, y in zip(a, b))
    return result


def step_lmeval(args) -> dict:
    try:
        import lm_eval  # noqa: F401
    except Exception as e:
        return {"skipped": f"lm_eval does not import here: {type(e).__name__}: {e}"}
    cmd = [
        sys.executable,
        "scripts/bench_mmlu_vs_lmeval.py",
        "--model",
        args.model_dir,
        "--load",
        "bf16",
        "--per-subject",
        "3",
        "--shots",
        "4",
        "--batch-size",
        "64",
        "--max-batch-tokens",
        "65536",
        "--chunks",
        "3",
        "--plain",
        "--json",
        str(args.out / "_lmeval.json"),
    ]
    with GpuSampler(args.out / "lmeval.smi") as smi:
        rc, seconds = _run(cmd, args.out / "lmeval.log")
    return {
        "exit": rc,
        "wall_s": round(seconds, 1),
        "command": " ".join(cmd[1:]),
        "report": _load(args.out, "_lmeval"),
        **smi.summary(),
    }


# -- the table -------------------------------------------------------------------------------------


def step_table(args) -> dict:
    from transformers import AutoConfig

    peaks, train, trl = _load(args.out, "peaks"), _load(args.out, "train"), _load(args.out, "trl")
    bench, decode = _load(args.out, "bench"), _load(args.out, "decode")
    if not peaks:
        return {"error": "no peaks.json: run the peaks step first"}
    flops, bandwidth = peaks["bf16_flops"], peaks["bandwidth_bytes_s"]
    counts = (
        weight_counts(AutoConfig.from_pretrained(args.model_dir))
        if Path(args.model_dir).is_dir()
        else _load(args.out, "counts")
    )
    if counts:
        _save(args.out, "counts", counts)
    n = counts.get("parameters", 0)
    rows = []

    def compute_row(phase, tokens, seconds, factor, peak, command):
        if not tokens or not seconds:
            return
        floor = factor * n * tokens / flops
        rows.append(
            {
                "phase": phase,
                "figure": f"{tokens / seconds:,.0f} tokens/s ({tokens:,} tokens in {seconds:.1f} s)",
                "floor": f"{factor}N FLOPs/token: {floor:.1f} s",
                "fraction": floor / seconds,
                "peak_gib": peak,
                "command": command,
            }
        )

    for name, t in (("training, ours (QLoRA nf4)", train), ("training, plain TRL SFTTrainer", trl)):
        peak = t.get("peak_allocated_gib")
        compute_row(name, t.get("tokens"), t.get("seconds"), 6, peak, t.get("command", ""))
    smi_peak = bench.get("smi_peak_mib")
    for p in bench.get("phases", []):
        if not p.get("computed"):
            continue
        label = f"{p['benchmark']} {p.get('kind') or ''} {p['variant']}".replace("  ", " ")
        if p["benchmark"] == "mmlu":
            compute_row(
                f"MMLU loglik, {p['variant']}" + (" (LoRA merged)" if p.get("merged") else ""),
                p["prompt_tokens"],
                p["seconds"],
                2,
                None,
                bench.get("command", ""),
            )
        elif p.get("kind") == "kl_to_base":
            compute_row(label, p["prompt_tokens"], p["seconds"], 4, None, bench.get("command", ""))
        elif p.get("new_tokens"):
            load = "nf4" if p["variant"].endswith("nf4") and not p.get("merged") else "bf16"
            batches = -(-p["computed"] // 64)
            steps = batches * 128  # random weights: every row runs to max_new_tokens
            step_s = p["seconds"] / steps
            floor = weight_bytes(counts, load) / bandwidth
            rows.append(
                {
                    "phase": f"Spider decoding, {p['variant']} (batch 64)",
                    "figure": f"{p['new_tokens'] / p['seconds']:,.0f} new tokens/s, "
                    f"{step_s * 1e3:.1f} ms/step (prefill included)",
                    "floor": f"{load} weights/step: {floor * 1e3:.2f} ms",
                    "fraction": floor / step_s,
                    "peak_gib": None,
                    "command": bench.get("command", ""),
                }
            )
    if decode:
        floor = decode["weight_bytes"] / bandwidth
        for key, name in (
            ("hf_generate", "plain HF generate"),
            ("ours_dynamic", "ours, model.generate"),
            ("ours_static_repeat_kv", "ours, static cache + CUDA graph, transformers' SDPA"),
            ("ours_static", "ours, static cache + CUDA graph"),
        ):
            if key in decode:
                step_s = decode[key]["seconds"] / (decode[key].get("steps") or decode["max_new_tokens"])
                rows.append(
                    {
                        "phase": f"Spider decoding batch 64x128, {name}",
                        "figure": f"{step_s * 1e3:.1f} ms/step",
                        "floor": f"bf16 weights/step: {floor * 1e3:.2f} ms",
                        "fraction": floor / step_s,
                        "peak_gib": round(decode[key]["peak_gib"], 1),
                        "command": "python scripts/bench_gpu_7b.py decode",
                    }
                )
    lines = [
        f"card: {peaks['device']}; bf16 matmul {flops / 1e12:.0f} TFLOP/s, "
        f"copy bandwidth {bandwidth / 1e12:.2f} TB/s (measured); "
        f"model: Mistral-7B-Instruct-v0.2 shape, {n / 1e9:.2f}B parameters",
        "",
        "| phase | figure | floor | fraction of floor | peak GPU memory (GiB) | command |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    for r in rows:
        peak = "" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}"
        lines.append(
            f"| {r['phase']} | {r['figure']} | {r['floor']} | {r['fraction']:.1%} | {peak} "
            f"| `{r['command']}` |"
        )
    if smi_peak:
        lines.append(
            f"\n`harness bench`: exit {bench.get('exit')}, {bench.get('wall_s')} s wall, "
            f"nvidia-smi peak {smi_peak / 1024:.1f} GiB, GPU utilisation {bench.get('smi_util_mean_pct')}% "
            f"mean, busy in {bench.get('smi_busy_share', 0):.0%} of samples"
        )
    if decode:
        lines.append(
            f"decoding texts, static vs model.generate: {decode['identical']}/{decode['rows']} identical; "
            f"differences' top-2 logit gaps: {[d['gap'] for d in decode['differences']]}"
        )
        lines.append(
            "steps with the SQL stop rule: model.generate "
            f"{decode.get('ours_dynamic_sql_stop', {}).get('steps')}, static "
            f"{decode.get('ours_static_sql_stop', {}).get('steps')}; static run: "
            f"{decode.get('ours_static', {}).get('run')}; eager static step's kernels: "
            f"{decode.get('eager_static_kernel_ms_per_step', 0):.1f} ms; fp32, 32 tokens, static vs "
            f"model.generate: {decode.get('fp32_identical_32_tokens')}/{decode['rows']} identical"
        )
    text = "\n".join(lines)
    (args.out / "phases.md").write_text(text + "\n")
    print(text)
    return {"rows": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=(*STEPS, "all", "_train"))
    p.add_argument("--out", required=True, type=Path, help="folder for the step records")
    p.add_argument("--model-dir", default="/tmp/mistral7b-shaped", help="the 7B-shaped folder")
    p.add_argument(
        "--tokenizer",
        default=None,
        help="for build: a tokenizer folder or .gguf (default: the default model's)",
    )
    p.add_argument("--steps", type=int, default=10, help="training steps of 32 examples")
    p.add_argument("--spider", type=int, default=128, help="Spider dev items")
    p.add_argument("--skip", nargs="*", default=[], help="steps to leave out of `all`")
    args, rest = p.parse_known_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.step == "_train":
        return step_train_child(args, rest[1:] if rest[:1] == ["--"] else rest)
    steps = [s for s in STEPS if s not in args.skip] if args.step == "all" else [args.step]
    for step in steps:
        start = time.perf_counter()
        print(f"bench_gpu_7b: {step} ...", flush=True)
        try:
            data = {
                "peaks": step_peaks,
                "build": step_build,
                "train": step_train,
                "trl": step_trl,
                "bench": step_bench,
                "decode": step_decode,
                "lmeval": step_lmeval,
                "table": step_table,
            }[step](args)
        except Exception as e:  # one failed step leaves the others their time
            import traceback

            data = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
        data["step_s"] = round(time.perf_counter() - start, 1)
        if step != "table":
            _save(args.out, step, data)
        print(
            f"bench_gpu_7b: {step} done in {data['step_s']} s: " + json.dumps(data, default=str)[:600],
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
