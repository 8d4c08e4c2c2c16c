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


def _scalar(value):
    """A 0-d array's item; anything else as it is."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def check_count(value, name, minimum=1):
    """``value`` as an int, which must be an integer (not a bool) of at
    least ``minimum``."""
    value = _scalar(value)
    if isinstance(value, bool | np.bool_) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_real(value, name, low=-math.inf, high=math.inf, *, allow_inf=False):
    """``value`` as a float, which must be a real number in ``[low, high]``,
    finite unless ``allow_inf`` (never NaN)."""
    value = _scalar(value)
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r}.")
    value = float(value)
    if not ((allow_inf or math.isfinite(value)) and low <= value <= high):
        if math.isfinite(low) and math.isfinite(high):
            bounds = f" in [{low:g}, {high:g}]"
        elif math.isfinite(low):
            bounds = f" >= {low:g}"
        elif math.isfinite(high):
            bounds = f" <= {high:g}"
        else:
            bounds = ""
        kind = "a number" if allow_inf else "a finite number"
        raise ValueError(f"{name} must be {kind}{bounds}, got {value!r}.")
    return value


def check_bool(value, name):
    """``value`` as a bool, which must be a bool."""
    value = _scalar(value)
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


class RejectsBoolCounts:
    """Estimator mixin: integer parameters refuse ``True`` and ``False``.

    scikit-learn's ``Interval(Integral, ...)`` accepts bools (``True`` is
    the integer one), so ``n_clusters=True`` would pass validation and fail
    deep inside a fit. Placed before ``BaseEstimator``, this extends
    ``_validate_params`` to refuse a bool for every parameter whose
    constraints are integer intervals and do not name ``"boolean"``.
    """

    def _validate_params(self):
        from sklearn.utils._param_validation import Interval, InvalidParameterError

        super()._validate_params()
        for name, constraints in self._parameter_constraints.items():
            if "boolean" in constraints or not any(
                isinstance(c, Interval) and c.type is Integral for c in constraints
            ):
                continue
            value = getattr(self, name)
            if isinstance(value, bool | np.bool_):
                raise InvalidParameterError(
                    f"The {name!r} parameter of {type(self).__name__} must be an "
                    f"integer, not a bool; got {value!r}."
                )
