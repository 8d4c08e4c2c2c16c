"""
Scaling with dask
=================

Fit and transform a dask array on a local cluster of two workers, and check
that the distributed fit reaches the same objective as the in-memory fit
from the same initial atoms. The same code runs on a multi-machine cluster:
only the :class:`~distributed.Client` changes. (The workers here are threads
of this process so that the example also runs as a plain script; the test
suite runs the same fit on worker processes.)
"""

import time

import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from dask.distributed import Client, LocalCluster

from sklearn_wlsc import WeightedL1SparseCoder

rng = np.random.default_rng(0)
centers = 4 * rng.standard_normal((20, 16))
Y = centers[rng.integers(0, 20, 40_000)] + rng.standard_normal((40_000, 16))
init = Y[rng.choice(len(Y), 32, replace=False)]

with (
    LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster,
    Client(cluster) as client,
):
    Yd = da.from_array(Y, chunks=5_000).persist()
    t0 = time.perf_counter()
    distributed = WeightedL1SparseCoder(32, init=init, max_iter=20, tol=1e-6).fit(Yd)
    t_dask = time.perf_counter() - t0
    codes = distributed.transform(Yd)  # lazy
    print(codes)
    codes = codes.compute()

t0 = time.perf_counter()
in_memory = WeightedL1SparseCoder(32, init=init, max_iter=20, tol=1e-6).fit(Y)
t_memory = time.perf_counter() - t0
rel = abs(distributed.objective_ - in_memory.objective_) / in_memory.objective_
print(f"dask fit {t_dask:.1f} s, in-memory fit {t_memory:.1f} s")
print(
    f"objectives {distributed.objective_:.8f} and {in_memory.objective_:.8f} (relative {rel:.1e})"
)
print("codes equal:", np.allclose(codes, in_memory.transform(Y), atol=1e-8))

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.semilogy(distributed.objective_path_ - in_memory.objective_path_[-1] + 1e-12, "o-", label="dask")
ax.semilogy(
    in_memory.objective_path_ - in_memory.objective_path_[-1] + 1e-12, "x--", label="in memory"
)
ax.set_xlabel("alternating iteration")
ax.set_ylabel("F - final F")
ax.set_title("The distributed fit follows the in-memory fit")
ax.legend()
fig.tight_layout()
plt.show()
