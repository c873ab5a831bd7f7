"""Benchmark suite (shipped as ``fastconv.benchmarks`` so ``fastconv bench`` works from an installed wheel).

``im2col`` is the numpy im2col + BLAS peer, ``peers`` wraps every engine behind one interface, ``cases`` holds
the shapes, ``harness`` times them side by side and writes the report; ``test_bench_*.py`` are the
pytest-benchmark suite (they also run as plain correctness tests in the normal test command).
"""
