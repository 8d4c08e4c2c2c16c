"""Argument checks shared by the package's public functions.

The estimators validate their parameters with scikit-learn's
``_parameter_constraints``; the functions of :mod:`sklearn_wlsc.datasets` and
:mod:`sklearn_wlsc.receptive_fields` use these, which raise ``TypeError`` for
a value of the wrong kind and ``ValueError`` for one out of range, naming the
argument either way.
"""

import math
from numbers import Integral, Real

import numpy as np


def check_count(value, name, minimum=1):
    """``value`` as an int, which must be an integer (not a bool) of at
    least ``minimum``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_real(value, name, low=-math.inf, high=math.inf):
    """``value`` as a float, which must be a finite real number in
    ``[low, high]``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r}.")
    value = float(value)
    if not (math.isfinite(value) and low <= value <= high):
        bounds = f" in [{low:g}, {high:g}]" if math.isfinite(low) or math.isfinite(high) else ""
        raise ValueError(f"{name} must be a finite number{bounds}, got {value!r}.")
    return value


def check_bool(value, name):
    """``value`` as a bool, which must be a bool."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def check_patch_shape(patch_shape, name="patch_shape"):
    """``(height, width)`` as two positive ints."""
    try:
        h, w = patch_shape
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair (height, width), got {patch_shape!r}.") from None
    return check_count(h, f"{name}[0]"), check_count(w, f"{name}[1]")
