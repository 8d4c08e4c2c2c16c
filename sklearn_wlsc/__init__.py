"""sklearn-wlsc: weighted-l1 sparse coding on the simplex for scikit-learn.

Public names are loaded on first access (PEP 562), so ``import
sklearn_wlsc`` is nearly free: scikit-learn, SciPy and the kernels load
when an estimator or function is first used. Importing the package or any
public name imports no optional dependency (torch, dask, matplotlib) and
compiles no kernel; :func:`warmup` compiles them ahead of time. The
receptive-field tools live in the submodules :mod:`sklearn_wlsc.datasets`
and :mod:`sklearn_wlsc.receptive_fields`, the torch module in
:mod:`sklearn_wlsc.torch`.
"""

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> submodule that defines it
_LAZY = {
    "SimplexSpectralClustering": "._clustering",
    "SimplexSpectralEmbedding": "._clustering",
    "WeightedL1SparseCoder": "._estimator",
    "sparse_encode": "._estimator",
    "warmup": "._warmup",
}

__all__ = [
    "SimplexSpectralClustering",
    "SimplexSpectralEmbedding",
    "WeightedL1SparseCoder",
    "__version__",
    "sparse_encode",
    "warmup",
]

if TYPE_CHECKING:  # pragma: no cover - for static analysis only
    from ._clustering import SimplexSpectralClustering, SimplexSpectralEmbedding
    from ._estimator import WeightedL1SparseCoder, sparse_encode
    from ._warmup import warmup


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
