"""``python -m training --config training/configs/<name>.toml [--output DIR] [--max-steps N]
[key=value ...]``."""

from training import main

raise SystemExit(main())
