"""sklearn-wlsc: weighted-l1 sparse coding on the simplex for scikit-learn.

Importing the package imports no optional dependency (torch, dask,
matplotlib) and does not compile any kernel. The receptive-field tools live
in the submodules :mod:`sklearn_wlsc.datasets` and
:mod:`sklearn_wlsc.receptive_fields`, the torch module in
:mod:`sklearn_wlsc.torch`.
"""

from ._clustering import SimplexSpectralClustering, SimplexSpectralEmbedding
from ._estimator import WeightedL1SparseCoder, sparse_encode

__version__ = "0.1.0"

__all__ = [
    "SimplexSpectralClustering",
    "SimplexSpectralEmbedding",
    "WeightedL1SparseCoder",
    "sparse_encode",
    "__version__",
]
