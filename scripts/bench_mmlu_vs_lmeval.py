"""Benchmark our MMLU ``loglik`` scorer against lm-evaluation-harness's HF backend.

Both read the same local CSVs (lm-eval builds its own prompts from them with a task config
equal to its default MMLU template) and run the same model object, so the comparison isolates
the scoring code. For each shot count it reports questions per second, the share of prompts
that are identical character for character, the share of identical answers and the largest
log-probability difference. Needs ``pip install --no-deps lm-eval`` plus its small deps.

    .venv/bin/python scripts/bench_mmlu_vs_lmeval.py                 # 3 per subject, 0 and 4 shots
    .venv/bin/python scripts/bench_mmlu_vs_lmeval.py --per-subject 1 --shots 4 --json out.json

Timing: the machine may be shared, so the subjects are cut into chunks and each chunk is timed
for both scorers back to back, alternating which goes first; load drifts hit both alike. The lm-eval
time is that of ``HFLM.loglikelihood`` alone on the requests its task built (its task setup
and metric aggregation are not counted, which only favours it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.engine.loglik import score_choices
from harness.engine.token_counts import batch_token_counter
from harness.models.loading import (
    DEFAULT_MODEL,
    context_length,
    load_base_model,
    load_tokenizer,
    resolve_model,
)
from harness.tasks.mmlu.items import LETTERS, find_mmlu_dir, load_mmlu_split
from harness.tasks.mmlu.prompts import LETTER_CHOICES, fit_prompts, mmlu_description, mmlu_shots
from harness.tasks.mmlu.selection import MMLUSelection, select_mmlu


def score_letters_loglik(model, tokenizer, requests, **kwargs):
    """Our scorer over the letters " A" .. " D", as the MMLU task asks the engine."""
    return score_choices(model, tokenizer, requests, [LETTER_CHOICES] * len(requests), **kwargs)


_COLUMNS = ["question", "A", "B", "C", "D", "answer"]
# lm-eval's default MMLU doc_to_text, with the hub's choices[i] replaced by our CSV columns.
_DOC_TO_TEXT = "{{question.strip()}}\nA. {{A}}\nB. {{B}}\nC. {{C}}\nD. {{D}}\nAnswer:"


def _lmeval_task(subject: str, mmlu_dir: Path, split: str):
    """An lm-eval task equal to its ``mmlu_<subject>`` task, reading the original CSVs.

    Every column is read as text (``features``) with ``na_filter`` off: pandas would otherwise
    turn answers like "None" or "NaN" into missing values and "010" into 10.
    """
    from datasets import Features, Value
    from lm_eval.api.task import ConfigurableTask

    return ConfigurableTask(
        config={
            "task": f"mmlu_local_{subject}",
            "dataset_path": "csv",
            "dataset_kwargs": {
                "data_files": {
                    "test": str(mmlu_dir / split / f"{subject}_{split}.csv"),
                    "dev": str(mmlu_dir / "dev" / f"{subject}_dev.csv"),
                },
                "column_names": _COLUMNS,
                "header": None,
                "na_filter": False,
                "features": Features({c: Value("string") for c in _COLUMNS}),
            },
            "test_split": "test",
            "fewshot_split": "dev",
            "fewshot_config": {"sampler": "first_n"},
            "output_type": "multiple_choice",
            "doc_to_text": _DOC_TO_TEXT,
            "doc_to_choice": list(LETTERS),
            "doc_to_target": "answer",
            "description": mmlu_description(subject),
            "metric_list": [{"metric": "acc"}],
        }
    )


def lmeval_requests(items, mmlu_dir: Path, split: str, shots: int) -> dict[str, list]:
    """lm-eval's loglikelihood Instances for ``items``, grouped by item_id (4 each, A..D)."""
    by_subject: dict[str, list] = {}
    for it in items:
        by_subject.setdefault(it.subject, []).append(it)
    out: dict[str, list] = {}
    for subject, subject_items in by_subject.items():
        task = _lmeval_task(subject, mmlu_dir, split)
        task.set_config(key="num_fewshot", value=shots)
        task.build_all_requests(samples=[it.index for it in subject_items], rank=0, world_size=1)
        for inst in task.instances:
            # With ``samples``, doc_id counts the sampled docs in file order, as our items are sorted.
            item = subject_items[inst.doc_id]
            row = [inst.doc[c] for c in _COLUMNS]
            if row != [item.question, *item.choices, item.answer]:
                raise RuntimeError(f"{item.item_id}: lm-eval read the CSV row as {row!r}, we read {item!r}")
            out.setdefault(item.item_id, []).append(inst)
    for key, insts in out.items():
        insts.sort(key=lambda inst: inst.idx)
        if [inst.args[1] for inst in insts] != [" A", " B", " C", " D"]:
            raise RuntimeError(f"{key}: unexpected lm-eval continuations {[inst.args[1] for inst in insts]}")
    return out


def _chunks(subjects: list[str], n: int) -> list[list[str]]:
    size = -(-len(subjects) // n)
    return [subjects[i : i + size] for i in range(0, len(subjects), size)]


def run(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.time()
    resolved = resolve_model(args.model)  # downloads and converts the default model once
    tokenizer = load_tokenizer(resolved)
    model = load_base_model(resolved, args.load, args.device)
    print(
        f"model {resolved.name} ({args.load}, {next(model.parameters()).device}) "
        f"ready in {time.time() - t0:.0f}s",
        flush=True,
    )

    from lm_eval.models.huggingface import HFLM

    max_len = context_length(model.config, tokenizer)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size, max_length=max_len)

    mmlu_dir = find_mmlu_dir(args.mmlu_dir)
    dev = load_mmlu_split(mmlu_dir, "dev")
    test = load_mmlu_split(mmlu_dir, args.split)
    selection = MMLUSelection(
        mode="per_subject", per_subject=args.per_subject, seed=args.seed, subjects=args.subjects or ()
    )
    items = select_mmlu(test, selection)
    count = batch_token_counter(tokenizer)
    report = {
        "model": resolved.name,
        "load": args.load,
        "device": str(next(model.parameters()).device),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "questions": len(items),
        "runs": [],
    }

    for k in args.shots:
        fitted = dict(
            zip(
                (it.item_id for it in items),
                fit_prompts([(it, mmlu_shots(dev, it.subject, k)) for it in items], count, max_len),
            )
        )
        dropped = sum(f.shots_dropped for f in fitted.values())
        lm_reqs = lmeval_requests(items, mmlu_dir, args.split, k)
        same_prompt = sum(lm_reqs[i][0].args[0] == fitted[i].prompt for i in fitted)

        # Warm-up (not timed): first calls allocate and pick kernels.
        warm = items[:2]
        lm.loglikelihood([inst for it in warm for inst in lm_reqs[it.item_id]], disable_tqdm=True)
        score_letters_loglik(
            model,
            tokenizer,
            [(fitted[it.item_id].prefix, fitted[it.item_id].suffix) for it in warm],
        )

        ours: dict[str, tuple] = {}
        theirs: dict[str, tuple] = {}
        # Wall time is what a user waits for; CPU time (all threads) moves less when other jobs
        # share the machine, so both are reported.
        wall_s = {"ours": 0.0, "lm": 0.0, "plain": 0.0}
        cpu_s = {"ours": 0.0, "lm": 0.0, "plain": 0.0}
        plain: dict[str, tuple] = {}
        subjects = sorted({it.subject for it in items})
        chunks = _chunks(subjects, args.chunks)
        for n, chunk in enumerate(chunks):
            chunk_items = [it for it in items if it.subject in set(chunk)]
            reqs = [(fitted[it.item_id].prefix, fitted[it.item_id].suffix) for it in chunk_items]
            insts = [inst for it in chunk_items for inst in lm_reqs[it.item_id]]

            def run_ours():
                scores = score_letters_loglik(
                    model,
                    tokenizer,
                    reqs,
                    batch_size=args.batch_size,
                    max_batch_tokens=args.max_batch_tokens,
                )
                ours.update({it.item_id: s.logprobs for it, s in zip(chunk_items, scores)})

            def run_lm():
                lls = lm.loglikelihood(insts, disable_tqdm=True)
                for i, it in enumerate(chunk_items):
                    theirs[it.item_id] = tuple(ll for ll, _ in lls[4 * i : 4 * i + 4])

            def run_plain():
                scores = score_letters_loglik(
                    model,
                    tokenizer,
                    reqs,
                    batch_size=args.batch_size,
                    max_batch_tokens=args.max_batch_tokens,
                    reuse_prefix=False,
                )
                plain.update({it.item_id: s.logprobs for it, s in zip(chunk_items, scores)})

            order = [("ours", run_ours), ("lm", run_lm)]
            if n % 2 == 0:
                order.reverse()
            if args.plain:
                order.append(("plain", run_plain))
            for name, f in order:
                wall, cpu = time.perf_counter(), time.process_time()
                f()
                wall_s[name] += time.perf_counter() - wall
                cpu_s[name] += time.process_time() - cpu
            t_ours, t_lm, t_plain = wall_s["ours"], wall_s["lm"], wall_s["plain"]
            if (n + 1) % max(1, len(chunks) // 6) == 0 or n + 1 == len(chunks):
                print(
                    f"  {k}-shot, {n + 1}/{len(chunks)} chunks: "
                    f"ours {t_ours:.1f}s, lm-eval {t_lm:.1f}s so far "
                    f"(load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )

        def argmax(lp):
            return LETTERS[max(range(4), key=lambda i: (lp[i], -i))]

        same_answer = sum(argmax(ours[i]) == argmax(theirs[i]) for i in ours)
        max_diff = max(abs(a - b) for i in ours for a, b in zip(ours[i], theirs[i]))
        gold = {it.item_id: it.answer for it in items}
        run_report = {
            "shots": k,
            "questions": len(items),
            "shots_dropped": dropped,
            "identical_prompts": same_prompt,
            "ours_q_per_s": len(items) / t_ours,
            "lmeval_q_per_s": len(items) / t_lm,
            "speedup": t_lm / t_ours,
            "ours_cpu_s_per_q": cpu_s["ours"] / len(items),
            "lmeval_cpu_s_per_q": cpu_s["lm"] / len(items),
            "speedup_cpu": cpu_s["lm"] / cpu_s["ours"],
            "identical_answers": same_answer,
            "agreement": same_answer / len(items),
            "max_abs_logprob_diff": max_diff,
            "acc_ours": sum(argmax(ours[i]) == gold[i] for i in ours) / len(items),
            "acc_lmeval": sum(argmax(theirs[i]) == gold[i] for i in theirs) / len(items),
        }
        if args.plain:
            run_report["plain_q_per_s"] = len(items) / t_plain
            run_report["plain_cpu_s_per_q"] = cpu_s["plain"] / len(items)
            run_report["plain_identical_answers"] = sum(argmax(plain[i]) == argmax(theirs[i]) for i in plain)
        report["runs"].append(run_report)
        print(
            f"{k}-shot, {len(items)} questions: ours {run_report['ours_q_per_s']:.2f} q/s, "
            f"lm-eval {run_report['lmeval_q_per_s']:.2f} q/s ({run_report['speedup']:.2f}x; "
            f"CPU s/q {run_report['ours_cpu_s_per_q']:.2f} vs {run_report['lmeval_cpu_s_per_q']:.2f}, "
            f"{run_report['speedup_cpu']:.2f}x)"
            + (
                f", plain one-pass {run_report['plain_q_per_s']:.2f} q/s, "
                f"{run_report['plain_cpu_s_per_q']:.2f} CPU s/q"
                if args.plain
                else ""
            )
            + f"; identical prompts {same_prompt}/{len(items)}, "
            f"identical answers {same_answer}/{len(items)}, "
            f"max |d logprob| {max_diff:.2e}, acc ours {run_report['acc_ours']:.3f} "
            f"/ lm-eval {run_report['acc_lmeval']:.3f}" + (f", shots dropped {dropped}" if dropped else ""),
            flush=True,
        )
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--load", default="fp32", help="fp32 or bf16 (bf16 is for CUDA)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--mmlu-dir", default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--per-subject", type=int, default=3, help="questions per subject (57 subjects)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subjects", nargs="+", default=None, help="only these subjects (default: all 57)")
    p.add_argument("--shots", type=int, nargs="+", default=[0, 4])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--max-batch-tokens",
        type=int,
        default=2048,
        help="our scorer: padded tokens a forward pass (raise on a GPU)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--chunks",
        type=int,
        default=19,
        help="timing rounds (19: three subjects each), alternating which scorer goes first",
    )
    p.add_argument("--plain", action="store_true", help="also time our scorer without prefix reuse")
    p.add_argument("--json", default=None, help="write the figures to this file")
    p.add_argument(
        "--min-agreement", type=float, default=0.0, help="exit 1 when answer agreement is below this"
    )
    args = p.parse_args(argv)
    report = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    worst = min(r["agreement"] for r in report["runs"])
    return 1 if worst < args.min_agreement else 0


if __name__ == "__main__":
    sys.exit(main())
