"""From result rows to conclusions: analysis, frontier, report, figure, regression gates."""
