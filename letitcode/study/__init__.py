"""The whole study from one plan: preparation, units, the runner and the report."""
