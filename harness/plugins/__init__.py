"""The pytest plugins: session, the per-task options (--data-dir TASK=PATH, --set TASK.key=value,
and their older aliases), results and exit status, speed-ups, deepeval's output, pre-flight."""
