"""The pytest-benchmark speed suites (``bench_*.py``), their timing helpers (:mod:`.timing`) and the runner that
stores their results as records (:mod:`.runner`, ``python -m benchmarks.speed``)."""
