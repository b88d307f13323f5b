"""``python -m harness.cli``: the harness command, run by this interpreter."""

import sys

from harness.cli import main

sys.exit(main())
