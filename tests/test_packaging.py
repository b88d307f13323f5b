"""The install paths: requirements/gpu.txt agrees with pyproject.toml's pins and leaves torch to
the machine; the GPU install script refuses what it cannot do; the missing-package filter."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            out[canonical(name)] = version.strip()
    return out


def test_gpu_requirements_hold_every_pin_but_torch():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = pins(project["dependencies"])
    gpu = pins((ROOT / "requirements" / "gpu.txt").read_text().splitlines())
    assert not [n for n in gpu if n == "torch" or n.startswith(("nvidia-", "triton"))], (
        "torch belongs to the machine"
    )
    wrong = {n: (v, gpu.get(n)) for n, v in declared.items() if gpu.get(n) != v}
    assert not wrong, f"pins that requirements/gpu.txt does not repeat: {wrong}"
    assert "sqlglot" not in gpu and "sqlglot" not in declared  # pinned once, never imported: dropped


def test_pyproject_pins_accelerate_and_states_the_click_knot():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"accelerate==1.16.0"' in text
    assert "huggingface-hub requires click>=8.4 from 1.16.3 on" in text.replace("\n#", "")


def test_the_missing_requirements_filter(tmp_path):
    req = tmp_path / "r.txt"
    req.write_text("# comment\npytest==0.0.1\nno-such-package-xyz==1.0\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "missing_requirements.py"), str(req)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["no-such-package-xyz==1.0"]  # pytest is installed: kept
    assert "pytest" in done.stderr and "pinned 0.0.1" in done.stderr


def test_the_gpu_install_script_refuses_bad_arguments():
    script = ROOT / "scripts" / "gpu_install.sh"
    bad = subprocess.run(["bash", str(script), "--wheels", "/nowhere"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--wheels needs a folder of wheels" in bad.stderr
    usage = subprocess.run(["bash", str(script), "--frobnicate"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage: scripts/gpu_install.sh" in usage.stderr
