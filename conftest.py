"""Collection rules shared by the test suite and the doctests."""

import importlib.util

# modules whose optional dependency is missing are not collected for doctests
collect_ignore = []
if importlib.util.find_spec("torch") is None:
    collect_ignore.append("sklearn_wlsc/torch.py")
    collect_ignore.append("sklearn_wlsc/_backends/_torch.py")
if importlib.util.find_spec("dask") is None:
    collect_ignore.append("sklearn_wlsc/_dask.py")
