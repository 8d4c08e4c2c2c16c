"""sklearn-wlsc: weighted-l1 sparse coding on the simplex for scikit-learn.

Importing the package imports no optional dependency (torch, dask,
matplotlib) and does not compile any kernel.
"""

from ._estimator import WeightedL1SparseCoder, sparse_encode

__version__ = "0.1.0"

__all__ = ["WeightedL1SparseCoder", "sparse_encode", "__version__"]
