r"""PyTorch modules for weighted-l1 sparse coding on the simplex.

This module imports torch and is not imported by ``import sklearn_wlsc``;
import it explicitly (``pip install "sklearn-wlsc[torch]"``)::

    from sklearn_wlsc.torch import UnrolledWLSC, train_unrolled

:class:`UnrolledWLSC` is the autoencoder of K-Deep Simplex and of the WLSC
papers: ``n_layers`` tied layers of accelerated projected gradient on the
simplex encode a batch, and the atoms decode it. Training backpropagates the
objective

.. math::

    F(A, X) = \frac{1}{n} \sum_i \Big[ \tfrac12 \|y_i - x_i A\|^2
    + \alpha \sum_j x_{ij} \|y_i - a_j\|^2 \Big]

through the encoder. The encoder is the same function as the torch
backend's (``sklearn_wlsc._backends._torch.unrolled_encode``), so a trained
module's codes are those of ``sparse_encode(..., algorithm="unrolled")``
with its atoms, up to rounding.
"""

import math
import time

import numpy as np

from ._backends import _torch as _tb
from ._checks import check_bool, check_count, check_real
from ._objective import ALPHA_MAX

torch = _tb.import_torch()  # an ImportError that says how to install torch
nn = torch.nn

__all__ = ["UnrolledWLSC", "train_unrolled"]


class UnrolledWLSC(nn.Module):
    r"""Unrolled weighted-l1 sparse coding autoencoder (K-Deep Simplex).

    The encoder runs ``n_layers`` steps of
    ``x⁺ = Π_Δ(z − step·(zG − c))``, ``z = x⁺ + k/(k+3)(x⁺ − x)`` from zero,
    with ``G = AAᵀ`` and ``c = (1 + 2α) yAᵀ − α diag(G)`` computed on
    samples and atoms centered at the atoms' mean (as the backends encode);
    the decoder is ``x A``. The codes are differentiable in the atoms (and
    in the step when it is learned).

    Parameters
    ----------
    n_components : int
        Number of atoms ``m``.
    n_features : int
        Dimension ``d`` of the samples.
    alpha : float, default=0.5
        Weight of the locality penalty.
    n_layers : int, default=50
        Depth of the unrolled encoder.
    train_step : bool, default=False
        Learn the step size: a scalar parameter ``step`` initialized to
        ``step`` when given, else to ``1 / L`` for the initial atoms.
        Otherwise the step is ``step`` when given (fixed), else ``1 / L``
        for the current atoms, recomputed at each call without gradient.
    step : float, default=None
        The encoder's step size, for instance one that
        :func:`train_unrolled` learned (``return_step=True``); the
        initial value of the learned step with ``train_step=True``.
        ``None``: ``1 / L``. A step above ``1 / L`` may make the encoder
        diverge.
    dictionary : array-like or Tensor of shape (n_components, n_features), default=None
        Initial atoms. ``None`` draws them from a standard normal
        distribution (seed torch's global generator, or better pass atoms).
    dtype : torch.dtype, default=None
        dtype of the parameters; ``None`` uses the dictionary's floating
        dtype, else torch's default.
    device : str or torch.device, default=None
        Device of the parameters.

    Attributes
    ----------
    weight : Parameter of shape (n_components, n_features)
        The atoms.
    step : Parameter or buffer of shape (), or None
        The learned step size (a parameter) when ``train_step=True``, the
        fixed ``step`` given (a buffer) otherwise, and ``None`` when the
        step is ``1 / L`` of the current atoms.

    Examples
    --------
    >>> import torch
    >>> from sklearn_wlsc.torch import UnrolledWLSC
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.randn(8, 5, generator=g, dtype=torch.float64)
    >>> model = UnrolledWLSC(4, 5, dictionary=y[:4], n_layers=20)
    >>> codes, reconstruction = model(y)
    >>> codes.shape, reconstruction.shape
    (torch.Size([8, 4]), torch.Size([8, 5]))
    >>> bool(torch.allclose(codes.sum(dim=1), torch.ones(8, dtype=torch.float64)))
    True
    >>> model.loss(y, codes).backward()
    >>> model.weight.grad.shape
    torch.Size([4, 5])
    """

    def __init__(
        self,
        n_components,
        n_features,
        *,
        alpha=0.5,
        n_layers=50,
        train_step=False,
        step=None,
        dictionary=None,
        dtype=None,
        device=None,
    ):
        super().__init__()
        self.n_components = check_count(n_components, "n_components")
        self.n_features = check_count(n_features, "n_features")
        self.alpha = check_real(alpha, "alpha", 0.0, ALPHA_MAX)
        self.n_layers = check_count(n_layers, "n_layers")
        self.train_step = check_bool(train_step, "train_step")
        if step is not None:
            step = _check_positive(step, "step")
        device = _tb.resolve_device(device)
        if dictionary is None:
            weight = torch.randn(self.n_components, self.n_features, dtype=dtype, device=device)
        else:
            if not isinstance(dictionary, torch.Tensor):
                # any layout numpy has (negative strides, big-endian, read-only)
                dictionary = np.asarray(dictionary)
                if dictionary.dtype.kind not in "biuf":
                    raise TypeError(
                        f"dictionary must hold real numbers, got dtype {dictionary.dtype}."
                    )
                dictionary = torch.from_numpy(
                    dictionary.astype(dictionary.dtype.newbyteorder("="), order="C", copy=True)
                )
            weight = dictionary
            if dtype is None and not weight.is_floating_point():
                dtype = torch.get_default_dtype()
            weight = weight.detach().to(device=device, dtype=dtype).clone()
            if weight.shape != (self.n_components, self.n_features):
                raise ValueError(
                    f"dictionary has shape {tuple(weight.shape)}, but (n_components, "
                    f"n_features) = {(self.n_components, self.n_features)} is required."
                )
            if not bool(torch.isfinite(weight).all()):
                raise ValueError("dictionary contains NaN or infinity.")
        self.weight = nn.Parameter(weight)
        if self.train_step:
            if step is None:
                step = 1.0 / _tb.lipschitz_constant(self.weight)
            self.step = nn.Parameter(torch.tensor(step, dtype=weight.dtype, device=weight.device))
        elif step is not None:
            self.register_buffer(
                "step", torch.tensor(step, dtype=weight.dtype, device=weight.device)
            )
        else:
            self.register_parameter("step", None)

    def extra_repr(self):
        return (
            f"n_components={self.n_components}, n_features={self.n_features}, "
            f"alpha={self.alpha}, n_layers={self.n_layers}, train_step={self.train_step}"
        )

    def step_size(self):
        """The encoder's step: ``step`` (learned or fixed), or ``1 / L`` (no
        gradient)."""
        if self.step is not None:
            return self.step
        return 1.0 / _tb.lipschitz_constant(self.weight)

    def encode(self, y):
        """Codes of the rows of ``y``: Tensor of shape (n, m) on the simplex.

        ``y`` must have shape (n, n_features). Its values are not checked
        (that would synchronize a GPU at every call): non-finite samples
        give non-finite codes.
        """
        if y.ndim != 2 or y.shape[1] != self.n_features:
            raise ValueError(
                f"y has shape {tuple(y.shape)}, but (n_samples, n_features) with "
                f"n_features={self.n_features} is required."
            )
        y = y.to(dtype=self.weight.dtype)
        # the network runs on samples and atoms centered at the atoms' mean,
        # as the backends do; its first step (from z = 0, off the simplex's
        # affine hull) depends on the origin, so the centering is part of
        # the function and is differentiated
        shift = self.weight.mean(dim=0)
        G, C = _tb.encoder_terms(y - shift, self.weight - shift, self.alpha)
        return _tb.unrolled_encode(G, C, self.step_size(), self.n_layers)

    def decode(self, x):
        """Reconstruction ``x A``: Tensor of shape (n, d)."""
        return x @ self.weight

    def forward(self, y):
        """Encode and decode ``y``; returns ``(codes, reconstruction)``."""
        codes = self.encode(y)
        return codes, self.decode(codes)

    def loss(self, y, codes):
        """The objective ``F``: the batch mean of
        ``½‖y − xA‖² + α Σ_j x_j ‖y − a_j‖²`` (a 0-d Tensor).

        For codes on the simplex (rows summing to one) ``F`` does not change
        when samples and atoms are translated together, so it is computed
        around the atoms' (constant) mean, which keeps float32 accurate.
        """
        y = y.to(dtype=self.weight.dtype)
        shift = self.weight.detach().mean(dim=0)
        return _tb.sample_objective(y - shift, self.weight - shift, codes, self.alpha).mean()


def _seed(random_state):
    """An integer seed from None, an int, or a numpy RandomState/Generator."""
    if random_state is None:
        return int(np.random.default_rng().integers(2**63 - 1))
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63 - 1))
    raise ValueError(f"Cannot seed a generator from {random_state!r}.")


def _check_positive(value, name):
    """A finite real number above zero, as a float."""
    value = check_real(value, name, low=0.0)
    if value == 0.0:
        raise ValueError(f"{name} must be positive, got {value!r}.")
    return value


def train_unrolled(
    Y,
    A0,
    *,
    alpha=0.5,
    n_layers=50,
    learning_rate=1e-3,
    batch_size=256,
    max_epochs=30,
    tol=0.0,
    random_state=None,
    device=None,
    train_step=False,
    clip_grad_norm=1.0,
    verbose=0,
    callback=None,
    return_step=False,
):
    r"""Train the atoms by backpropagating ``F`` through the unrolled encoder.

    Adam on minibatches, reshuffled every epoch with a seeded generator, as
    K-Deep Simplex and the WLSC paper train. The objective is invariant to
    translating samples and atoms together and scales with the square of the
    data, so training runs on standardized data
    ``(Y − mean) / rms``: ``learning_rate`` is then relative to the data's
    spread (atoms move by about ``learning_rate × rms`` per step whatever the
    units), and ``clip_grad_norm`` is in those units too. The results are
    mapped back to the original units.

    Parameters
    ----------
    Y : ndarray or Tensor of shape (n_samples, n_features)
        Training samples (float32 or float64; training runs in that dtype).
    A0 : ndarray or Tensor of shape (n_components, n_features)
        Initial atoms.
    alpha : float, default=0.5
    n_layers : int, default=50
    learning_rate : float, default=1e-3
        Adam's step size, in units of the data's root-mean-square spread.
        1e-3 is the papers' setting; 1e-2 converges faster on small data.
    batch_size : int, default=256
    max_epochs : int, default=30
    tol : float, default=0.0
        Stop when an epoch lowers ``F`` by at most ``tol`` times its value;
        0 runs ``max_epochs`` epochs.
    random_state : int, RandomState, Generator or None, default=None
        Seeds the shuffling.
    device : str or torch.device, default=None
        Where to train (``None``: the CPU, or ``Y``'s device for a tensor).
    train_step : bool, default=False
        Also learn the encoder's step (its Adam step is scaled by the initial
        step, so that it moves relatively as fast as the atoms).
    clip_grad_norm : float or None, default=1.0
        Clip the gradient's norm (in standardized units) before each Adam
        step; ``None`` disables clipping. Adam is invariant to a constant
        scale of the gradients, so this only tames occasional spikes.
    verbose : int, default=0
        Print the objective after each epoch when positive.
    callback : callable, default=None
        Called after each epoch as ``callback(info)`` with a dict holding
        ``epoch``, ``objective``, ``components`` (float64 ndarray, original
        units), ``step`` (the learned step in the original units, ``None``
        without ``train_step``) and ``time``; returning True stops
        training.
    return_step : bool, default=False
        Also return the encoder's step in the original units: the learned
        one with ``train_step=True``, else ``1 / L`` of the trained atoms.
        ``UnrolledWLSC(..., dictionary=A, step=step)`` then encodes as the
        trained network does.

    Returns
    -------
    A : ndarray of shape (n_components, n_features), float64
        Trained atoms, in the original units.
    history : list of float
        ``F`` over the whole data with unrolled codes, before training and
        after each epoch (``n_epochs + 1`` values).
    n_epochs : int
        Number of epochs run.
    step : float
        The encoder's step in the original units; only with
        ``return_step=True``.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sklearn_wlsc.torch import UnrolledWLSC, train_unrolled
    >>> Y = np.random.default_rng(0).standard_normal((60, 5))
    >>> A, history, n_epochs, step = train_unrolled(
    ...     Y, Y[:4], n_layers=10, max_epochs=3, train_step=True,
    ...     random_state=0, return_step=True)
    >>> model = UnrolledWLSC(4, 5, n_layers=10, dictionary=A, step=step)
    >>> y = torch.from_numpy(Y)
    >>> F = model.loss(y, model.encode(y)).detach()
    >>> bool(abs(float(F) - history[-1]) <= 1e-9 * history[-1])
    True
    """
    from sklearn.utils import check_array

    from ._dict_learning import fit_scale_exponent, unscaled_objective
    from ._estimator import _check_tensor

    alpha = check_real(alpha, "alpha", 0.0, ALPHA_MAX)
    n_layers = check_count(n_layers, "n_layers")
    learning_rate = _check_positive(learning_rate, "learning_rate")
    batch_size = check_count(batch_size, "batch_size")
    max_epochs = check_count(max_epochs, "max_epochs", minimum=0)
    tol = check_real(tol, "tol", low=0.0)
    if clip_grad_norm is not None:
        clip_grad_norm = _check_positive(clip_grad_norm, "clip_grad_norm")
    train_step = check_bool(train_step, "train_step")
    return_step = check_bool(return_step, "return_step")
    device = _tb.resolve_device(device)
    if isinstance(Y, torch.Tensor):
        Yt = _check_tensor(Y.detach(), "Y")
        device = Yt.device if device is None else device
    else:
        Yt = _tb.TorchBackend._to_tensor(
            check_array(Y, dtype=[np.float64, np.float32], input_name="Y"), "cpu"
        )
        device = torch.device("cpu") if device is None else device
    dtype = Yt.dtype
    if isinstance(A0, torch.Tensor):
        A0 = _check_tensor(A0.detach(), "A0", n_features=Yt.shape[1])
    else:
        # a C-ordered, writable copy: torch takes no negative strides
        A0 = torch.from_numpy(
            np.array(check_array(A0, dtype=np.float64, input_name="A0"), order="C", copy=True)
        )
    if A0.shape[1] != Yt.shape[1]:
        raise ValueError(
            f"A0 has {A0.shape[1]} features, but Y has {Yt.shape[1]}; the atoms "
            "must live in the samples' space."
        )
    A0 = A0.detach().to(device=device, dtype=torch.float64)
    # data of extreme magnitude are first divided by a power of two (exact),
    # so that their squares and sums stay in the float range, as fit does
    exponent = fit_scale_exponent(
        max(float(Yt.abs().max()) if Yt.numel() else 0.0, float(A0.abs().max()))
    )
    if exponent:
        Yt = _tb._times_power_of_two(Yt, -exponent)
        A0 = _tb._times_power_of_two(A0, -exponent)

    # standardize, F(Y, A) = rms² F((Y − μ)/rms, (A − μ)/rms), in float64
    # chunks on the device
    n = Yt.shape[0]
    chunks = range(0, n, 65536)
    mean = sum(Yt[s : s + 65536].to(device, torch.float64).sum(dim=0) for s in chunks)
    mean = mean / max(n, 1) if n else A0.new_zeros(A0.shape[1])
    ss = sum(
        float(((Yt[s : s + 65536].to(device, torch.float64) - mean) ** 2).sum()) for s in chunks
    )
    rms = math.sqrt(ss / max(Yt.numel(), 1))
    if not (rms > 0.0 and math.isfinite(rms)):
        rms = 1.0
    Yn = torch.empty(Yt.shape, dtype=dtype, device=device)
    for s in chunks:
        Yn[s : s + 65536] = (Yt[s : s + 65536].to(device, torch.float64) - mean) / rms
    An = ((A0 - mean) / rms).to(dtype)

    m, d = An.shape
    model = UnrolledWLSC(
        m, d, alpha=alpha, n_layers=n_layers, train_step=train_step, dictionary=An
    ).to(device)
    groups = [{"params": [model.weight], "lr": learning_rate}]
    if train_step:
        groups.append({"params": [model.step], "lr": learning_rate * model.step.item()})
    optimizer = torch.optim.Adam(groups)
    generator = torch.Generator(device="cpu").manual_seed(_seed(random_state))

    def full_objective():
        """``F`` of the data divided by ``2**exponent``."""
        with torch.no_grad():
            total = 0.0
            for start in range(0, n, 8192):
                yb = Yn[start : start + 8192]
                total += float(model.loss(yb, model.encode(yb))) * yb.shape[0]
        return total / max(n, 1) * rms * rms

    def components():
        A = (model.weight.detach().to(torch.float64) * rms + mean).cpu().numpy()
        return np.ldexp(A, exponent)

    def in_data_units(F):
        return float(unscaled_objective(F, exponent))

    def encoder_step():
        """The encoder's step (learned, or ``1 / L`` of the current atoms) in
        the original units: it scales as 1 / units²."""
        step = model.step_size()  # a tensor when learned, else a float
        if isinstance(step, torch.Tensor):
            step = step.detach().item()
        return math.ldexp(step / rms**2, -2 * exponent)

    history = [full_objective()]
    t0 = time.perf_counter()
    n_epochs = 0
    for _ in range(max_epochs):
        perm = torch.randperm(n, generator=generator).to(device)
        model.train()
        for start in range(0, n, batch_size):
            yb = Yn[perm[start : start + batch_size]]
            optimizer.zero_grad(set_to_none=True)
            codes = model.encode(yb)
            loss = model.loss(yb, codes)
            loss.backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
        model.eval()
        n_epochs += 1
        F = full_objective()
        history.append(F)
        elapsed = time.perf_counter() - t0
        if verbose:
            print(
                f"[train_unrolled] epoch {n_epochs}, objective {in_data_units(F):.6e}, "
                f"relative change {(history[-2] - F) / max(abs(history[-2]), 1e-300):.3e}, "
                f"{elapsed:.2f} s"
            )
        if callback is not None:
            info = {
                "epoch": n_epochs,
                "objective": in_data_units(F),
                "components": components(),
                "step": encoder_step() if train_step else None,
                "time": elapsed,
            }
            if callback(info):
                break
        if tol > 0.0 and history[-2] - F <= tol * max(abs(history[-2]), np.finfo(float).tiny):
            break
    A = components()
    result = (A, [in_data_units(F) for F in history], n_epochs)
    return (*result, encoder_step()) if return_step else result
