"""Results: the result dataset, loading runs, tables and plots."""
