"""Preparing a model is safe when several processes do it at once (pytest-xdist workers on a
fresh cache): one downloads or converts, the others wait for its result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HOLD = """
import sys, time
from pathlib import Path
from harness.models.default_model import _locked
target, log, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
with _locked(target):
    with log.open("a") as f:
        f.write(f"in {name}\\n")
    time.sleep(0.5)
    with log.open("a") as f:
        f.write(f"out {name}\\n")
"""


def test_two_processes_never_hold_a_models_lock_at_once(tmp_path):
    target, log = tmp_path / "models" / "converted", tmp_path / "log.txt"
    procs = [
        subprocess.Popen([sys.executable, "-c", HOLD, str(target), str(log), name], cwd=ROOT)
        for name in ("a", "b", "c")
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    lines = log.read_text().split()
    events = list(zip(lines[::2], lines[1::2]))
    assert len(events) == 6
    # Each process leaves before the next one enters: in x, out x, in y, out y, ...
    assert [kind for kind, _ in events] == ["in", "out"] * 3
    assert all(events[i][1] == events[i + 1][1] for i in range(0, 6, 2))


# The notice comes only on a CPU with AVX-512 BF16; the filter must be in place on any other too.
CHECK_FILTER = """
import logging
import harness.models.loading, peft
from harness.models import noise
assert any(isinstance(f, noise._DropKernelsHubNotice) for f in logging.getLogger(noise.LOGGER).filters)
"""


def test_importing_peft_after_the_harness_prints_no_kernels_hub_notice():
    """A benchmark that attaches an adapter imports peft, hence bitsandbytes (harness/models/noise.py)."""
    done = subprocess.run(
        [sys.executable, "-c", CHECK_FILTER],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "kernels-community" not in done.stdout + done.stderr
