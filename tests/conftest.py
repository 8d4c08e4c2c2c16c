import importlib.util

import numpy as np
import pytest


def _installed_backends():
    names = ["numba", "numpy"]
    if importlib.util.find_spec("torch") is not None:
        names.append("torch")
    return names


BACKENDS = _installed_backends()


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Every installed backend, by name: each encoder and estimator test runs
    on each of them."""
    return request.param


@pytest.fixture(params=[b for b in BACKENDS if b != "numpy"])
def fast_backend(request):
    """The installed production backends (not the slow numpy reference), for
    estimator-level tests that fit many times."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def make_problem(rng, n=40, d=6, m=8, dtype=np.float64):
    """Samples scattered around random atoms, and a perturbed dictionary."""
    atoms = rng.standard_normal((m, d))
    labels = rng.integers(0, m, n)
    Y = atoms[labels] + 0.3 * rng.standard_normal((n, d))
    A = atoms + 0.1 * rng.standard_normal((m, d))
    return Y.astype(dtype), A.astype(dtype)


@pytest.fixture(scope="session", autouse=True)
def _torch_single_thread():
    """torch's intra-op threads fight numba's and BLAS's for two cores in CI;
    the tests run torch on one thread."""
    if "torch" not in BACKENDS:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class RecordingCallback:
    """A scikit-learn fit callback that records the objective of each
    ``task`` (``"iteration"`` of the alternating fit, ``"epoch"`` of the
    unrolled one) and stops after ``stop_after`` of them."""

    def __init__(self, stop_after=None, task="iteration"):
        self.stop_after = stop_after
        self.task = task
        self.objectives = []
        self.tasks = []

    def setup(self, estimator, context):
        self.tasks.append("setup")

    def on_fit_task_begin(self, estimator, context):
        self.tasks.append(context.task_name)

    def on_fit_task_end(self, estimator, context, *, metadata=None, fitted_estimator=None):
        if context.task_name == self.task:
            self.objectives.append(metadata["objective"])
            # the model as of this task can already transform
            n_features = fitted_estimator.components_.shape[1]
            assert fitted_estimator.transform(np.zeros((2, n_features))).shape == (
                2,
                fitted_estimator.components_.shape[0],
            )
            return self.stop_after is not None and len(self.objectives) >= self.stop_after
        return False

    def teardown(self, estimator, context):
        self.tasks.append("teardown")
