"""The domain: problems, benchmarks and the one definition of the same problem."""
