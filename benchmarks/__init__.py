"""pytest-benchmark benchmarks (not in the default test run: ``pytest benchmarks/``)."""
