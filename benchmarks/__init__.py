"""Benchmarks of sklearn-wlsc: one script per question, each printing tables
of ratios against peers timed in the same process. See README.md."""
