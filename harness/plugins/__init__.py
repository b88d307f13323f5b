"""The pytest plugins: session, results and exit status, speed-ups, deepeval's output, pre-flight."""
