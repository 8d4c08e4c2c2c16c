"""Backends: the few numerical primitives the algorithm needs, per engine.

A backend encodes a batch of samples for a fixed dictionary (the unrolled
and the exact encoder), projects rows onto the simplex, and computes the
sufficient statistics of the dictionary update. The algorithm in
``_dict_learning`` is written once against this small interface.

Backends are looked up by name in a registry and imported lazily, so that
``import sklearn_wlsc`` does not import numba or torch:

- ``"numba"``: jitted CPU kernels, parallel over samples (the default);
- ``"torch"``: the same primitives on tensors, for GPUs (optional extra);
- ``"numpy"``: the plain numpy reference, the oracle of the tests.
"""

import importlib
import sys

# name -> (module, class); modules are imported on first use
_REGISTRY = {
    "numpy": ("._numpy", "NumpyBackend"),
    "numba": ("._numba", "NumbaBackend"),
    "torch": ("._torch", "TorchBackend"),
}

_INSTANCES = {}

BACKENDS = ("auto", *_REGISTRY)


def is_torch_tensor(obj):
    """Whether ``obj`` is a torch tensor (subclasses and parameters
    included), without importing torch: no tensor exists before torch is
    imported."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _device_type(device):
    """``"cpu"`` for ``"cpu"``, ``"cpu:0"`` or ``torch.device("cpu")``; the
    part before the colon for other devices."""
    return str(device).split(":", 1)[0].strip()


def resolve_backend_name(name, *arrays, device=None):
    """Resolve ``"auto"`` to a concrete backend name.

    ``"auto"`` picks torch only when an input is a torch tensor or a device
    other than the CPU is requested; otherwise numba. A device other than
    the CPU with a backend that only computes there (numba, numpy) is a
    contradiction, refused with a ``ValueError`` rather than ignored.
    """
    if name != "auto":
        if name in ("numba", "numpy") and device is not None and _device_type(device) != "cpu":
            raise ValueError(
                f"device={str(device)!r} needs the torch backend; backend={name!r} "
                "computes on the CPU. Use backend='torch' or 'auto', or device=None."
            )
        return name
    if any(is_torch_tensor(a) for a in arrays):
        return "torch"
    if device is not None and _device_type(device) != "cpu":
        return "torch"
    return "numba"


def get_backend(name="auto", *arrays, device=None):
    """Return the backend instance registered under ``name``.

    Parameters
    ----------
    name : {"auto", "numba", "torch", "numpy"}
    *arrays : array-like
        Inputs that ``"auto"`` inspects.
    device : str or None
        Device for the torch backend.

    Raises
    ------
    ValueError
        If the name is unknown.
    ImportError
        If the backend's optional dependency is not installed.
    """
    name = resolve_backend_name(name, *arrays, device=device)
    if name not in _REGISTRY:
        raise ValueError(f"Unknown backend {name!r}; expected one of {sorted(BACKENDS)}.")
    # device=None (follow the tensors' device) and "cpu" are distinct torch
    # backends
    key = (name, None if name != "torch" else str(device))
    backend = _INSTANCES.get(key)
    if backend is None:
        module_name, class_name = _REGISTRY[name]
        module = importlib.import_module(module_name, __name__)
        cls = getattr(module, class_name)
        backend = cls() if name != "torch" else cls(device=device)
        _INSTANCES[key] = backend
    return backend
