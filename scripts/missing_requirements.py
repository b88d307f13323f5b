"""Print the lines of a requirements file whose package this Python does not have at all, and
say on stderr which installed packages differ from their pins (scripts/gpu_install.sh)."""

from __future__ import annotations

import re
import sys
from importlib import metadata


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(path: str) -> int:
    installed = {
        canonical(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]
    }
    differ = []
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, version = line.partition("==")
        have = installed.get(canonical(name))
        if have is None:
            print(line)
        elif have != version:
            differ.append(f"{name} {have} (pinned {version})")
    if differ:
        print("kept at the installed version: " + ", ".join(differ), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
