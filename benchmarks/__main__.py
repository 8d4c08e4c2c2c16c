"""``python -m benchmarks``: run every benchmark (see :mod:`benchmarks.run`)."""

from .run import main

main()
