"""Public estimators and functions: parameter rules, validation, thin drivers."""

import functools
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _dask, _dict_learning, _objective
from ._backends import BACKENDS, get_backend, is_torch_tensor, resolve_backend_name
from ._checks import RejectsBoolCounts

try:  # scikit-learn >= 1.9: progress and early-stopping callbacks
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # pragma: no cover - older scikit-learn

    class CallbackSupportMixin:
        """Stand-in for scikit-learn < 1.9, which has no callback framework."""

        def _init_callback_context(self, **kwargs):
            return _NoCallbackContext()


class _NoCallbackContext:
    """The callback context when scikit-learn has no callback framework."""

    def subcontext(self, **kwargs):
        return self

    def call_on_fit_task_begin(self, **kwargs):
        return self

    def call_on_fit_task_end(self, **kwargs):
        return False


_FLOATS = [np.float64, np.float32]

_ENCODER_CONSTRAINTS = {
    "alpha": [Interval(Real, 0, _objective.ALPHA_MAX, closed="both")],
    "n_layers": [Interval(Integral, 1, None, closed="left")],
    "backend": [StrOptions(set(BACKENDS))],
    "device": [str, None],
    # 0 threads means nothing; negative counts back from all cores, as in joblib
    "n_jobs": [
        Interval(Integral, 1, None, closed="left"),
        Interval(Integral, None, -1, closed="right"),
        None,
    ],
}


def _check_tensor(X, input_name="X", n_features=None):
    """Validate a torch tensor of samples as ``check_array`` would an array:
    2-D, real, finite, non-empty; integers become float64. Returns the
    (possibly converted) tensor, on its device."""
    from ._backends._torch import import_torch

    torch = import_torch()
    if X.layout != torch.strided:
        raise TypeError(
            f"{input_name} is a sparse torch tensor ({X.layout}); pass a dense one "
            "(tensor.to_dense())."
        )
    if X.device.type == "meta":
        raise ValueError(f"{input_name} is a meta tensor, which holds no data.")
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D tensor for {input_name}, got a {X.ndim}D tensor.")
    if X.is_complex():
        raise ValueError(f"Complex data not supported: {input_name} is {X.dtype}.")
    if X.dtype not in (torch.float32, torch.float64):
        X = X.to(torch.float64)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(
            f"Found a tensor {input_name} of shape {tuple(X.shape)} with 0 sample(s) or "
            "0 feature(s); a minimum of 1 is required."
        )
    if not bool(torch.isfinite(X).all()):
        raise ValueError(f"Input {input_name} contains NaN or infinity.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"{input_name} has {X.shape[1]} features, but the model is expecting "
            f"{n_features} features as input."
        )
    return X


def _to_numpy(X):
    """A CPU numpy array from a torch tensor (for fitting)."""
    return X.detach().cpu().numpy()


@validate_params(
    {
        "X": ["array-like"],
        "dictionary": ["array-like"],
        **_ENCODER_CONSTRAINTS,
        "algorithm": [StrOptions({"exact", "unrolled"})],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left"), None],
    },
    prefer_skip_nested_validation=True,
)
def sparse_encode(
    X,
    dictionary,
    *,
    alpha=0.5,
    algorithm="exact",
    n_layers=50,
    tol=1e-10,
    max_iter=None,
    backend="auto",
    device=None,
    n_jobs=None,
):
    r"""Weighted-l1 sparse codes on the simplex for a fixed dictionary.

    Each row ``x`` of the result solves

    .. math::

        \min_{x \in \Delta} \tfrac12 \|y - x A\|^2
        + \alpha \sum_j x_j \|y - a_j\|^2,

    where ``Δ`` is the probability simplex, ``y`` a row of ``X`` and ``a_j``
    the rows of ``dictionary``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Samples to encode.
    dictionary : array-like of shape (n_components, n_features)
        The atoms, one per row.
    alpha : float, default=0.5
        Weight of the locality penalty (K-Deep Simplex's ``penalty``), at
        most ``1e6`` (codes are hard nearest-atom assignments well before;
        larger values would only cost accuracy).
    algorithm : {"exact", "unrolled"}, default="exact"
        ``"exact"`` solves to a certified duality gap with an active-set
        method; ``"unrolled"`` runs ``n_layers`` accelerated projected-
        gradient steps (the network of the papers): fixed cost, approximate.
    n_layers : int, default=50
        Number of steps of the unrolled encoder.
    tol : float, default=1e-10
        Exact encoder: stop when the Frank–Wolfe duality gap, which bounds
        ``f(x) − f*``, less an allowance for rounding, is at
        most ``tol`` times the objective at the nearest vertex,
        ``(½ + α) min_j ‖y − a_j‖²``.
    max_iter : int, default=None
        Iteration cap of the exact encoder (``None``: ``20 m + 100``): active-
        set steps for the numba and torch backends. The numpy reference runs
        a first-order method that needs far more steps, and takes at least
        100,000 of them.
    backend : {"auto", "numba", "torch", "numpy"}, default="auto"
        Array backend. ``"auto"`` uses numba unless a torch tensor or a
        non-CPU device is given; ``"numpy"`` is the slow reference.
    device : str, default=None
        Device of the torch backend (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
    n_jobs : int, default=None
        Number of threads of the numba kernels (``None`` and ``-1``: all
        cores, or ``NUMBA_NUM_THREADS`` where set; ``-2``: all but one; not
        ``0``).

    Returns
    -------
    codes : ndarray, Tensor or dask array of shape (n_samples, n_components)
        Non-negative rows summing to one, in the dtype of ``X``
        (float32 or float64). A torch tensor ``X`` gives a tensor on the
        same device; a dask array gives a lazy dask array computed block by
        block, equal to the in-memory result.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_wlsc import sparse_encode
    >>> atoms = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> codes = sparse_encode([[0.2, 0.1]], atoms, alpha=0.0)
    >>> codes.round(3)
    array([[0.7, 0.2, 0.1]])
    """
    for name, value in (("n_layers", n_layers), ("max_iter", max_iter), ("n_jobs", n_jobs)):
        # validate_params takes True for the integer one
        if isinstance(value, bool | np.bool_):
            raise TypeError(f"{name} must be an integer, not a bool; got {value!r}.")
    # X keeps its kind (dask array, torch tensor or ndarray); the dictionary
    # is always validated as a numpy array
    if _dask.is_dask_collection(X):
        X = _dask.check_dask_array(X, lazy_rows=True)
    elif is_torch_tensor(X):
        X = _check_tensor(X)
    else:
        X = check_array(X, dtype=_FLOATS, input_name="X")
    if is_torch_tensor(dictionary):
        dictionary = _to_numpy(_check_tensor(dictionary, "dictionary"))
    dictionary = check_array(dictionary, dtype=_FLOATS, input_name="dictionary")
    if dictionary.shape[1] != X.shape[1]:
        raise ValueError(
            f"dictionary has {dictionary.shape[1]} features per atom but X has "
            f"{X.shape[1]} features."
        )
    if _dask.is_dask_collection(X):
        return _dask.encode_dask(
            X,
            dictionary,
            float(alpha),
            algorithm=algorithm,
            n_layers=n_layers,
            tol=tol,
            max_iter=max_iter,
            backend_name=backend,
            device=device,
            n_jobs=n_jobs,
        )
    if is_torch_tensor(X):
        if backend not in ("auto", "torch"):
            raise ValueError(f"A torch tensor X needs backend='torch' or 'auto', not {backend!r}.")
        return get_backend("torch", device=device).encode_tensor_pass(
            X,
            dictionary,
            float(alpha),
            algorithm=algorithm,
            n_layers=n_layers,
            tol=tol,
            max_iter=max_iter,
        )
    backend = get_backend(backend, X, dictionary, device=device)
    res = _dict_learning.encode_pass(
        X,
        dictionary,
        float(alpha),
        backend,
        algorithm=algorithm,
        n_layers=n_layers,
        tol=tol,
        max_iter=max_iter,
        n_jobs=n_jobs,
    )
    return res.codes


class WeightedL1SparseCoder(
    RejectsBoolCounts,
    CallbackSupportMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
):
    r"""Dictionary learning with weighted-l1 sparse codes on the simplex.

    Learns atoms ``A`` (``components_``) and codes ``X`` whose rows lie on the
    probability simplex by minimizing

    .. math::

        F(A, X) = \frac{1}{n} \sum_i \Big[ \tfrac12 \|y_i - x_i A\|^2
        + \alpha \sum_j x_{ij} \|y_i - a_j\|^2 \Big].

    The penalty is the Laplacian quadratic form of the bipartite graph
    between samples and atoms with edge weights ``x_ij``: a sample pays for
    using an atom in proportion to their squared distance, so codes are
    sparse and local. ``alpha = 0`` is simplex-constrained least squares;
    as ``alpha → ∞`` codes become hard assignments and the fit becomes
    k-means.

    Parameters
    ----------
    n_components : int, default=None
        Number of atoms ``m``. ``None`` uses ``n_features``.
    alpha : float, default=0.5
        Weight of the locality penalty (K-Deep Simplex's ``penalty``), at
        most ``1e6`` (codes are hard nearest-atom assignments well before;
        larger values would only cost accuracy). The objective is
        invariant to rescaling the data, so ``alpha`` needs no adjustment to
        the data's units.
    n_layers : int, default=50
        Steps of the unrolled encoder (``transform_algorithm="unrolled"``).
    transform_algorithm : {"exact", "unrolled"}, default="exact"
        Encoder used by :meth:`transform`: ``"exact"`` solves to a certified
        duality gap; ``"unrolled"`` is the papers' fixed-depth network.
    transform_tol : float, default=1e-10
        Relative duality-gap tolerance of the exact encoder: the gap is
        compared to the objective at the sample's nearest atom,
        ``(½ + α) min_j ‖y − a_j‖²``, after its rounding allowance.
    fit_algorithm : {"alternating", "unrolled"}, default="alternating"
        ``"alternating"``: exact encoding, then the closed-form dictionary
        update ``(XᵀX + 2α diag(Xᵀ1)) A = (1 + 2α) XᵀY``; ``F`` never
        increases. ``"unrolled"``: the papers' autoencoder, training the atoms
        with Adam by backpropagating ``F`` through the ``n_layers``-deep
        unrolled encoder (needs torch; ``max_iter`` counts epochs).
    max_iter : int, default=100
        Maximum number of dictionary updates in :meth:`fit` (epochs for
        ``fit_algorithm="unrolled"``).
    tol : float, default=1e-4
        Stop when the relative decrease of ``F`` is at most ``tol``.
    batch_size : int, default=256
        Minibatch size of ``fit_algorithm="unrolled"``.
    init : {"k-means++", "random"} or array-like of shape (n_components, n_features), default="k-means++"
        Initial atoms: k-means++ seeds, random samples, or given atoms.
    learning_rate : float, default=1e-2
        Adam's step size for ``fit_algorithm="unrolled"``, relative to the
        data's root-mean-square spread (training runs on standardized data).
        The papers use 1e-3 with many epochs on MNIST.
    backend : {"auto", "numba", "torch", "numpy"}, default="auto"
        Array backend. ``"auto"`` is numba, except for torch tensors, a
        non-CPU ``device`` and ``fit_algorithm="unrolled"``, which use torch.
        A tensor is encoded on its own device unless ``device`` names
        another, and fitted there when it lives on a GPU (``fit`` copies a
        CPU tensor for numba, which gives the same atoms faster).
        ``transform`` encodes tensors with torch whatever the backend (a
        tensor in, a tensor out; ``sparse_encode`` with an explicit
        ``backend="numba"`` refuses a tensor instead).
    device : str, default=None
        Device of the torch backend (``"cpu"``, ``"cuda"``, ``"cuda:1"``,
        ``"mps"``). Fitted attributes are numpy arrays in any case, so a
        model fitted on a GPU unpickles on a machine without one.
    n_jobs : int, default=None
        Number of threads of the numba kernels (``None`` and ``-1``: all
        cores, or ``NUMBA_NUM_THREADS`` where set; ``-2``: all but one; not
        ``0``).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization.
    verbose : int, default=0
        Print the objective after each iteration when positive.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The learned atoms.
    n_components_ : int
        Number of atoms.
    objective_ : float
        Final value of ``F`` on the training data (after :meth:`partial_fit`:
        ``F`` of the last minibatch, under the atoms before that batch's
        update), in the data's units:
        ``inf`` (or ``0``) where ``F`` itself lies beyond the float range,
        for data of magnitude beyond about ``1e154`` (or below ``1e-162``).
        Such data are fitted divided by a power of two, exactly, so the
        atoms and codes are unaffected.
    objective_path_ : ndarray of shape (n_updates + 1,)
        ``F`` after each exact encoding during :meth:`fit`.
    n_iter_ : int
        Number of dictionary updates performed.
    n_steps_ : int
        Number of dictionary updates, counting :meth:`partial_fit` calls.
    n_reseeded_ : int
        How many times an unused atom was re-seeded with a poorly
        represented sample.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (n_features,)
        Names of features seen during :meth:`fit`, when they are strings.

    See Also
    --------
    sparse_encode : The encoder as a function.
    sklearn.decomposition.DictionaryLearning : Classical l1 dictionary learning.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_wlsc import WeightedL1SparseCoder
    >>> X, _ = load_digits(return_X_y=True)
    >>> coder = WeightedL1SparseCoder(n_components=32, random_state=0)
    >>> codes = coder.fit_transform(X)
    >>> codes.shape
    (1797, 32)
    >>> bool(abs(codes.sum(axis=1) - 1).max() < 1e-12 and codes.min() >= 0)
    True
    """

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        **_ENCODER_CONSTRAINTS,
        "transform_algorithm": [StrOptions({"exact", "unrolled"})],
        "transform_tol": [Interval(Real, 0, None, closed="neither")],
        "fit_algorithm": [StrOptions({"alternating", "unrolled"})],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"k-means++", "random"}), "array-like"],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=None,
        *,
        alpha=0.5,
        n_layers=50,
        transform_algorithm="exact",
        transform_tol=1e-10,
        fit_algorithm="alternating",
        max_iter=100,
        tol=1e-4,
        batch_size=256,
        init="k-means++",
        learning_rate=1e-2,
        backend="auto",
        device=None,
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.alpha = alpha
        self.n_layers = n_layers
        self.transform_algorithm = transform_algorithm
        self.transform_tol = transform_tol
        self.fit_algorithm = fit_algorithm
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.init = init
        self.learning_rate = learning_rate
        self.backend = backend
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    # -- helpers -----------------------------------------------------------

    def _backend(self, *arrays):
        return get_backend(self.backend, *arrays, device=self.device)

    def _fit_backend(self, X, tensor=None):
        """The backend that fits validated ``X``; ``tensor`` is the torch
        tensor it came from. ``"auto"`` fits a tensor on a GPU there, with
        the torch backend, and one on the CPU with numba (the same numbers,
        faster: the fitted attributes are numpy arrays either way); the
        torch backend uses the tensor's device unless ``device`` names
        another."""
        if tensor is None:
            return self._backend(X)
        if self.backend == "auto" and self.device is None and tensor.device.type == "cpu":
            return self._backend(X)
        if resolve_backend_name(self.backend, tensor) != "torch":
            return self._backend(X)
        device = tensor.device if self.device is None else self.device
        return get_backend("torch", device=device)

    def _initial_dictionary(self, X, random_state):
        """Check ``n_components`` and ``init`` against ``X``; initial atoms."""
        n_features = X.shape[1]
        if isinstance(self.init, str):
            m = n_features if self.n_components is None else self.n_components
        else:
            init = self.init
            if is_torch_tensor(init):
                init = _to_numpy(_check_tensor(init, "init"))
            init = check_array(init, dtype=_FLOATS, input_name="init")
            m = init.shape[0] if self.n_components is None else self.n_components
            if init.shape != (m, n_features):
                raise ValueError(
                    f"init has shape {init.shape}, but (n_components, n_features) "
                    f"= {(m, n_features)} is required."
                )
        if X.shape[0] < m:
            warnings.warn(
                f"n_samples={X.shape[0]} is smaller than n_components={m}: "
                "the extra atoms start as mixtures of samples and may stay "
                "unused.",
                UserWarning,
                stacklevel=3,
            )
        if isinstance(self.init, str):
            if _dask.is_dask_collection(X):
                return _dask.init_dictionary_dask(X, m, self.init, random_state)
            return _dict_learning.init_dictionary(X, m, self.init, random_state)
        return init.astype(np.float64)

    def _initial_dictionary_in_memory(self, X, random_state):
        """:meth:`_initial_dictionary` of in-memory ``X``, in its units,
        drawn from ``X`` divided by a power of two when its magnitude is
        extreme (k-means++ squares distances), as :meth:`fit` does."""
        exponent = _dict_learning.fit_scale_exponent(_dict_learning._abs_max(X))
        if not exponent:
            return self._initial_dictionary(X, random_state)
        A0 = self._initial_dictionary(np.ldexp(X, -exponent), random_state)
        return A0 if not isinstance(self.init, str) else np.ldexp(A0, exponent)

    def _encode_params(self):
        return {"tol": float(self.transform_tol), "max_iter": None}

    def _dask_encode_kwargs(self):
        return dict(
            algorithm=self.transform_algorithm,
            n_layers=self.n_layers,
            backend_name=self.backend,
            device=self.device,
            n_jobs=self.n_jobs,
            **self._encode_params(),
        )

    def _encode(self, X, **kwargs):
        """Encode validated ``X`` with the fitted atoms and the transform
        settings; returns an :class:`~._dict_learning.EncodePass`."""
        # the pass casts the atoms to X's dtype once they are scaled
        return _dict_learning.encode_pass(
            X,
            self.components_,
            float(self.alpha),
            self._backend(X),
            algorithm=self.transform_algorithm,
            n_layers=self.n_layers,
            n_jobs=self.n_jobs,
            **self._encode_params(),
            **kwargs,
        )

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    # -- fitting -----------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the dictionary from ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        tensor = None
        if is_torch_tensor(X):
            tensor = _check_tensor(X)
            X = _to_numpy(tensor)
        if _dask.is_dask_collection(X):
            validate_data(self, _dask.column_meta(X), skip_check_array=True)
            X = _dask.check_dask_array(X)
            if self.fit_algorithm == "unrolled":
                raise ValueError(
                    "fit_algorithm='unrolled' needs the data in memory; use "
                    "fit_algorithm='alternating' for dask arrays."
                )
            fit_function = functools.partial(
                _dask.alternating_fit_dask, backend_name=self.backend, device=self.device
            )
        else:
            X = validate_data(self, X, dtype=_FLOATS)
            if self.fit_algorithm == "unrolled":
                return self._fit_unrolled(X, tensor)
            fit_function = functools.partial(
                _dict_learning.alternating_fit, backend=self._fit_backend(X, tensor)
            )
        callback_ctx = self._init_callback_context(max_subtasks=self.max_iter + 1)
        callback_ctx.call_on_fit_task_begin(estimator=self, X=X)
        random_state = check_random_state(self.random_state)
        # data of extreme magnitude are fitted divided by a power of two
        # (exactly), so that no squared distance or objective leaves the
        # float range; the atoms and objectives are scaled back below
        if _dask.is_dask_collection(X):
            # one pass for the magnitude and the column mean; the mean serves
            # the fit unless the data are scaled (then it is taken again, on
            # the scaled data, as the in-memory fit takes it)
            max_abs, center = _dask.abs_max_and_mean(X)
            exponent = _dict_learning.fit_scale_exponent(max_abs)
            X_fit = _dask.scaled(X, exponent)
            if not exponent:
                fit_function = functools.partial(fit_function, center=center)
        else:
            exponent = _dict_learning.fit_scale_exponent(_dict_learning._abs_max(X))
            X_fit = np.ldexp(X, -exponent) if exponent else X
        A0 = self._initial_dictionary(X_fit, random_state)
        if exponent and not isinstance(self.init, str):
            A0 = np.ldexp(A0, -exponent)

        def on_iteration(iteration, objective, atoms):
            # each encoding of the alternating loop is one callback task
            ctx = callback_ctx.subcontext(task_name="iteration")
            ctx.call_on_fit_task_begin(estimator=self, X=X)
            return ctx.call_on_fit_task_end(
                estimator=self,
                X=X,
                metadata={"objective": objective},
                reconstruction_attributes=lambda: self._fitted_attributes(atoms, X.dtype),
            )

        A, history, n_iter, n_reseeded, stats = fit_function(
            X_fit,
            A0,
            float(self.alpha),
            max_iter=self.max_iter,
            tol=self.tol,
            encode_params=self._encode_params(),
            n_jobs=self.n_jobs,
            verbose=self.verbose,
            on_iteration=on_iteration,
            scale_exponent=exponent,
            return_statistics=True,
        )
        self.components_ = np.ldexp(A, exponent).astype(X.dtype)
        self.n_components_ = A.shape[0]
        self.objective_path_ = _dict_learning.unscaled_objective(history, exponent)
        self.objective_ = float(self.objective_path_[-1])
        self.n_iter_ = n_iter
        self.n_steps_ = n_iter
        self.n_reseeded_ = n_reseeded
        XtX, s, XtY = stats
        self._keep_statistics((XtX, s, np.ldexp(XtY, exponent)), X.shape[0])
        callback_ctx.call_on_fit_task_end(
            estimator=self,
            X=X,
            reconstruction_attributes=lambda: self._fitted_attributes(self.components_, X.dtype),
        )
        return self

    def _fit_unrolled(self, X, tensor=None):
        """Train the atoms by backpropagation through the unrolled encoder,
        on ``device``, else on the device of ``tensor`` (the torch tensor
        ``X`` came from), else on the CPU."""
        if self.backend not in ("auto", "torch"):
            raise ValueError(
                "fit_algorithm='unrolled' trains by backpropagation with torch: use "
                f"backend='torch' or 'auto', not {self.backend!r}."
            )
        from ._backends._torch import import_torch

        import_torch()  # a clear ImportError when the extra is missing
        from .torch import train_unrolled

        callback_ctx = self._init_callback_context(max_subtasks=self.max_iter)
        callback_ctx.call_on_fit_task_begin(estimator=self, X=X)

        def on_epoch(info):
            # each epoch of the training is one callback task
            ctx = callback_ctx.subcontext(task_name="epoch")
            ctx.call_on_fit_task_begin(estimator=self, X=X)
            return ctx.call_on_fit_task_end(
                estimator=self,
                X=X,
                metadata={"objective": info["objective"]},
                reconstruction_attributes=lambda: self._fitted_attributes(
                    info["components"], X.dtype
                ),
            )

        random_state = check_random_state(self.random_state)
        A0 = self._initial_dictionary_in_memory(X, random_state)
        A, history, n_epochs = train_unrolled(
            X if tensor is None else tensor,
            A0,
            alpha=float(self.alpha),
            n_layers=self.n_layers,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            max_epochs=self.max_iter,
            tol=self.tol,
            random_state=random_state,
            device=self.device,
            verbose=self.verbose,
            callback=on_epoch,
        )
        self.components_ = np.asarray(A, dtype=X.dtype)
        self.n_components_ = A.shape[0]
        self.objective_path_ = np.asarray(history, dtype=np.float64)
        self.objective_ = float(history[-1])
        self.n_iter_ = n_epochs
        self.n_steps_ = n_epochs
        self.n_reseeded_ = 0
        # the statistics that partial_fit continues from: one exact encoding
        # with the trained atoms, as the alternating fit's last one
        res = _dict_learning.encode_pass(
            X,
            A,
            float(self.alpha),
            self._fit_backend(X, tensor),
            algorithm="exact",
            keep_codes=False,
            statistics=True,
            n_jobs=self.n_jobs,
            **self._encode_params(),
        )
        n = X.shape[0]
        self._keep_statistics(tuple(t / n for t in res.statistics), n)
        callback_ctx.call_on_fit_task_end(
            estimator=self,
            X=X,
            reconstruction_attributes=lambda: self._fitted_attributes(self.components_, X.dtype),
        )
        return self

    def _keep_statistics(self, statistics, n_samples):
        """Keep a fit's per-sample statistics ``(XᵀX, Xᵀ1, XᵀY) / n`` for
        :meth:`partial_fit`, standing for ``n_samples`` samples."""
        self._stats = tuple(np.asarray(t, dtype=np.float64) for t in statistics)
        self._stats_n_samples = int(n_samples)
        self._minibatch_step = None  # set from the first batch's size

    def _fitted_attributes(self, atoms, dtype):
        """The attributes that make a usable model from ``atoms``, for
        callbacks that inspect the model during the fit."""
        return {
            "components_": np.asarray(atoms, dtype=dtype),
            "n_components_": atoms.shape[0],
            "n_features_in_": atoms.shape[1],
        }

    def fit_transform(self, X, y=None):
        """Fit to ``X``, then return its codes; equals ``fit(X).transform(X)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        codes : ndarray of shape (n_samples, n_components)
        """
        return self.fit(X).transform(X)

    def partial_fit(self, X, y=None):
        """Update the dictionary with one minibatch.

        The first call initializes the atoms from the batch. Each call
        encodes the batch exactly, folds its sufficient statistics
        ``(XᵀX, Xᵀ1, XᵀY)`` into running averages with the forgetting
        factor of Mairal et al. (2010), and solves for the dictionary.
        After :meth:`fit` on ``n`` samples, partial_fit continues from the
        fitted atoms and from the statistics of fit's last encoding: its
        first batch of ``b`` samples carries ``b / (n + b)`` of the
        statistics, and the forgetting factor goes on as after one epoch of
        ``⌈n / b⌉`` minibatches, so a small batch refines the model rather
        than replacing it, as in scikit-learn's MiniBatchDictionaryLearning.
        A dask array or dataframe is one minibatch, computed into memory.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        self : object
        """
        first = not hasattr(self, "components_")
        # every call: parameters may have been set since the last one
        self._validate_params()
        tensor = None
        if is_torch_tensor(X):
            tensor = _check_tensor(X)
            X = _to_numpy(tensor)
        if _dask.is_dask_collection(X):
            # a minibatch: computed into memory, its column names checked as
            # a dask dataframe's are in fit and transform
            validate_data(self, _dask.column_meta(X), reset=first, skip_check_array=True)
            X = check_array(
                np.asarray(_dask.check_dask_array(X).compute()), dtype=_FLOATS, input_name="X"
            )
        else:
            X = validate_data(self, X, dtype=_FLOATS, reset=first)
        if first:
            random_state = check_random_state(self.random_state)
            A = self._initial_dictionary_in_memory(X, random_state)
            self.n_steps_ = 0
            self.n_reseeded_ = 0
        else:
            A = self.components_.astype(np.float64)
        if getattr(self, "_stats", None) is None:
            # the first minibatch of a model that fit did not make
            m, d = A.shape
            self._stats = (np.zeros((m, m)), np.zeros(m), np.zeros((m, d)))
            self._minibatch_step = 0
        res = _dict_learning.encode_pass(
            X,
            A,
            float(self.alpha),
            self._fit_backend(X, tensor),
            algorithm="exact",
            keep_codes=False,
            objective=True,
            statistics=True,
            n_jobs=self.n_jobs,
            **self._encode_params(),
        )
        n = X.shape[0]
        if self._minibatch_step is None:
            # the first batch after fit: the steps go on as after one epoch of
            # minibatches of this size over the n_seen samples fit saw, and
            # fit's per-sample statistics are weighed so that this batch
            # carries n / (n_seen + n) of them
            n_seen = self._stats_n_samples
            self._minibatch_step = -(-n_seen // n)  # ceil(n_seen / n)
            w = _dict_learning.minibatch_weight(self._minibatch_step, n)
            self._stats = tuple(t * (n_seen / (n * w)) for t in self._stats)
        w = _dict_learning.minibatch_weight(self._minibatch_step, n)
        self._stats = tuple(w * old + new / n for old, new in zip(self._stats, res.statistics))
        XtX, s, XtY = self._stats
        unused = _dict_learning.unused_atoms(s, 1)
        if unused.any():
            A = A.copy()
            self.n_reseeded_ += _dict_learning.reseed_atoms(A, unused, X, res.objective)
        A = _dict_learning.update_dictionary(XtX, s, XtY, float(self.alpha), A)
        self.components_ = A.astype(X.dtype)
        self.n_components_ = A.shape[0]
        self.objective_ = float(np.mean(res.objective))
        self._minibatch_step += 1
        self.n_steps_ += 1
        self.n_iter_ = self.n_steps_
        return self

    # -- using a fitted model ---------------------------------------------

    def transform(self, X):
        """Encode ``X`` as codes on the simplex.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        codes : ndarray or Tensor of shape (n_samples, n_components)
            Non-negative rows summing to one, in the dtype of ``X``; a torch
            tensor ``X`` gives a tensor on the same device.
        """
        check_is_fitted(self)
        self._validate_params()  # the transform settings may have been set since fit
        if _dask.is_dask_collection(X):
            validate_data(self, _dask.column_meta(X), reset=False, skip_check_array=True)
            X = _dask.check_dask_array(X, lazy_rows=True)
            return _dask.encode_dask(
                X, self.components_, float(self.alpha), **self._dask_encode_kwargs()
            )
        if is_torch_tensor(X):
            X = _check_tensor(X, n_features=self.n_features_in_)
            return get_backend("torch", device=self.device).encode_tensor_pass(
                X,
                self.components_,
                float(self.alpha),
                algorithm=self.transform_algorithm,
                n_layers=self.n_layers,
                tol=float(self.transform_tol),
                max_iter=None,
            )
        X = validate_data(self, X, dtype=_FLOATS, reset=False)
        return self._encode(X).codes

    def inverse_transform(self, X):
        """Reconstruct samples from codes: ``X @ components_``.

        Parameters
        ----------
        X : array-like, Tensor or dask array of shape (n_samples, n_components)
            Codes.

        Returns
        -------
        Y : ndarray, Tensor or dask array of shape (n_samples, n_features)
            In the dtype of ``X`` (float64 for integer codes); a torch tensor
            ``X`` gives a tensor on its device, a dask array a dask array.
        """
        check_is_fitted(self)
        m = self.components_.shape[0]

        def check_columns(n_columns):
            if n_columns != m:
                raise ValueError(
                    f"X has {n_columns} columns, but codes of this model have "
                    f"n_components={m} columns."
                )

        if _dask.is_dask_collection(X):
            X = _dask.check_dask_array(X, lazy_rows=True)
            check_columns(X.shape[1])
            return _dask.reconstruct_dask(X, self.components_)
        if is_torch_tensor(X):
            from ._backends._torch import import_torch

            torch = import_torch()
            X = _check_tensor(X)
            check_columns(X.shape[1])
            return X @ torch.as_tensor(self.components_, dtype=X.dtype, device=X.device)
        X = check_array(X, dtype=_FLOATS, input_name="X")
        check_columns(X.shape[1])
        return X @ self.components_.astype(X.dtype, copy=False)

    def score(self, X, y=None):
        """Negative objective ``−F`` of ``X`` under the model (higher is better).

        Codes are computed with the transform settings.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        self._validate_params()
        if _dask.is_dask_collection(X):
            validate_data(self, _dask.column_meta(X), reset=False, skip_check_array=True)
            X = _dask.check_dask_array(X)
            f = _dask.sample_objective_dask(
                X, self.components_, float(self.alpha), **self._dask_encode_kwargs()
            )
            return -float(f.mean().compute())
        if is_torch_tensor(X):
            X = _to_numpy(_check_tensor(X, n_features=self.n_features_in_))
        X = validate_data(self, X, dtype=_FLOATS, reset=False)
        res = self._encode(X, keep_codes=False, objective=True)
        return -float(np.mean(res.objective))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
