"""Scoring: pass@k, summaries, statistics, reference metrics, code quality, the error taxonomy and the trusted judge."""
