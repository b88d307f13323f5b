"""Statistics and a run's numbers: pure functions of result rows, no model, no pytest."""
