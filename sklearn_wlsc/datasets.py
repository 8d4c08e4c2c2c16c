"""Whitened natural-image patches from images that ship with installed packages.

Nothing here downloads anything. The images come from scikit-learn's
:func:`~sklearn.datasets.load_sample_images` (``china.jpg``, ``flower.jpg``)
and, when scikit-image is installed, from the natural photographs bundled
inside its wheel (read straight from the package directory, so scikit-image's
downloader is never involved, and scikit-image is not even imported).
"""

import functools
import importlib.util
import numbers
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch, check_array, check_random_state, check_scalar

from ._checks import check_bool, check_count

__all__ = ["available_images", "load_natural_image_patches", "whiten_image"]

# name -> (source, file name, split). The split of each image is fixed here,
# once, so that "train" and "test" never share an image whatever is installed.
# Only natural photographs: no text, microscopy, astronomy, synthetic patterns
# or strongly periodic man-made textures (brick).
_CATALOG = {
    "china": ("sklearn", "china.jpg", "train"),
    "flower": ("sklearn", "flower.jpg", "test"),
    "camera": ("skimage", "camera.png", "train"),
    "astronaut": ("skimage", "astronaut.png", "train"),
    "coffee": ("skimage", "coffee.png", "train"),
    "rocket": ("skimage", "rocket.jpg", "train"),
    "grass": ("skimage", "grass.png", "train"),
    "motorcycle_left": ("skimage", "motorcycle_left.png", "train"),
    "chelsea": ("skimage", "chelsea.png", "test"),
    "gravel": ("skimage", "gravel.png", "test"),
    "moon": ("skimage", "moon.png", "test"),
}

# "region" split: this fraction of each image's columns (the left part) is
# training data, the rest (the right part) test data.
_REGION_TRAIN_FRACTION = 0.75

# Olshausen & Field (1997) cut-off, in cycles per pixel (f0 = 0.4 N cycles
# per image for an N x N image).
_F0 = 0.4

# ITU-R BT.601 luma weights, as PIL's "L" mode.
_LUMA = np.array([0.299, 0.587, 0.114])


def _skimage_data_dir():
    """Directory of scikit-image's bundled data files, or None."""
    try:
        spec = importlib.util.find_spec("skimage")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data"
    return path if path.is_dir() else None


def available_images():
    """Names of the natural images available offline in this environment.

    Returns
    -------
    names : dict of str to str
        Image name -> its split (``"train"`` or ``"test"``) under
        ``split_by="image"``, in catalog order.

    Examples
    --------
    >>> from sklearn_wlsc.datasets import available_images
    >>> names = available_images()
    >>> names["china"], names["flower"]
    ('train', 'test')
    """
    data_dir = _skimage_data_dir()
    names = {}
    for name, (source, filename, split) in _CATALOG.items():
        if source == "sklearn" or (data_dir is not None and (data_dir / filename).is_file()):
            names[name] = split
    return names


def _to_gray(image):
    """uint8 or float image (H, W[, C]) -> float64 gray image in [0, 1]."""
    image = np.asarray(image)
    scale = 255.0 if image.dtype == np.uint8 else 1.0
    image = image.astype(np.float64) / scale
    if image.ndim == 3:
        image = image[..., :3] @ _LUMA if image.shape[2] >= 3 else image[..., 0]
    return image


@functools.cache
def _gray_image(name):
    """Read-only gray image in [0, 1] of a catalog image."""
    source, filename, _ = _CATALOG[name]
    if source == "sklearn":
        from sklearn.datasets import load_sample_image

        image = load_sample_image(filename)
    else:
        from PIL import Image

        data_dir = _skimage_data_dir()
        if data_dir is None or not (data_dir / filename).is_file():
            raise ValueError(f"image {name!r} needs scikit-image, which is not installed.")
        with Image.open(data_dir / filename) as im:
            image = np.asarray(im)
    gray = _to_gray(image)
    gray.flags.writeable = False
    return gray


def whiten_image(image, f0=_F0):
    r"""Olshausen–Field whitening of one gray image, scaled to unit variance.

    The image's mean is removed, then its Fourier transform is multiplied by
    the radial filter

    .. math::

        W(f) = f \exp\big(-(f / f_0)^4\big),

    where ``f`` is the radial spatial frequency in cycles per pixel
    (``numpy.fft.fftfreq`` convention, Nyquist = 0.5). With ``f0 = 0.4``
    cycles per pixel this is Olshausen & Field's ``f0 = 0.4 N`` cycles per
    image for an ``N x N`` image, and it is defined the same way for
    non-square images. The ``f`` ramp flattens the ``1/f^2`` power spectrum
    of natural images; the quartic exponential removes the corner
    frequencies, where noise and aliasing dominate. The filtering is done on
    the image mirrored to twice its size (a periodic, continuous extension),
    so that the borders create no wrap-around artifacts. The result is
    divided by its standard deviation.

    Parameters
    ----------
    image : array-like of shape (height, width)
        A gray image.
    f0 : float, default=0.4
        Cut-off frequency, in cycles per pixel.

    Returns
    -------
    whitened : ndarray of shape (height, width)
        Zero mean, unit variance (unless the image is constant: zeros).
    """
    # 2-D, real, finite and non-empty, or a ValueError that says which
    image = check_array(image, dtype=np.float64, input_name="image")
    check_scalar(f0, "f0", numbers.Real, min_val=0, include_boundaries="neither")
    h, w = image.shape
    ext = np.pad(image - image.mean(), ((0, h), (0, w)), mode="symmetric")
    fy = np.fft.fftfreq(2 * h)[:, None]
    fx = np.fft.rfftfreq(2 * w)[None, :]
    f = np.hypot(fx, fy)
    filt = f * np.exp(-((f / f0) ** 4))
    out = np.fft.irfft2(np.fft.rfft2(ext) * filt, s=ext.shape)[:h, :w]
    return _unit_variance(out)


def _unit_variance(image):
    image = image - image.mean()
    std = image.std()
    return image / std if std > 0 else image


@functools.lru_cache(maxsize=64)
def _prepared_image(name, part, whiten):
    """Read-only prepared image: the region ``part`` ("all", "train" or
    "test") of a catalog image, cropped first, then whitened or just scaled
    to unit variance. Cropping before filtering means the two regions of an
    image share no pixel and no filter support."""
    gray = _gray_image(name)
    if part != "all":
        cut = int(round(_REGION_TRAIN_FRACTION * gray.shape[1]))
        gray = gray[:, :cut] if part == "train" else gray[:, cut:]
    out = whiten_image(gray) if whiten else _unit_variance(gray)
    out.flags.writeable = False
    return out


def _resolve_images(images):
    available = available_images()
    if isinstance(images, str):
        if images == "auto":
            return list(available)
        if images == "sklearn":
            return ["china", "flower"]
        images = [images]
    try:
        names = list(images)  # any iterable of names: a list, an array, a generator
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) for n in names):
        raise TypeError(
            f"images must be 'auto', 'sklearn', an image name or a list of names, got {images!r}."
        )
    names = [str(n) for n in names]
    if not names:
        raise ValueError("images is empty: name at least one image.")
    unknown = [n for n in names if n not in _CATALOG]
    if unknown:
        raise ValueError(f"unknown image(s) {unknown}; known images: {sorted(_CATALOG)}.")
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(
            f"image(s) {missing} need scikit-image, which is not installed "
            "(pip install scikit-image)."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"images contains duplicates: {names}.")
    return names


def load_natural_image_patches(
    patch_size=16,
    n_patches=10000,
    *,
    whiten=True,
    split="train",
    split_by="image",
    images="auto",
    random_state=None,
    return_images=False,
):
    """Whitened natural-image patches, from images that ship with the install.

    The pipeline of Olshausen & Field (1996, 1997), on images that need no
    download:

    1. **Images.** scikit-learn's two sample photographs (``china``,
       ``flower``) and, when scikit-image is installed, the natural
       photographs bundled in its wheel (``camera``, ``astronaut``,
       ``coffee``, ``rocket``, ``grass``, ``motorcycle_left``, ``chelsea``,
       ``gravel``, ``moon``). See :func:`available_images`.
    2. **Gray levels** in [0, 1] with the ITU-R BT.601 luma weights (the
       8-bit values are used as they are, without gamma linearization).
    3. **Whitening** of each whole image (or image region, see ``split_by``)
       with the radial filter ``f exp(-(f/f0)^4)``, ``f0 = 0.4`` cycles per
       pixel, then scaling to unit variance per image: see
       :func:`whiten_image`. With ``whiten=False`` only the mean is removed
       and the variance normalized.
    4. **Patches** of ``patch_size x patch_size`` pixels at positions drawn
       uniformly among all positions in the selected images (so larger
       images give more patches), flattened row by row.
    5. **DC removal:** each patch's mean is subtracted.

    Parameters
    ----------
    patch_size : int, default=16
        Side of the square patches, in pixels.
    n_patches : int, default=10000
        Number of patches to draw (with replacement of positions).
    whiten : bool, default=True
        Apply the Olshausen–Field whitening filter.
    split : {"train", "test", "all"}, default="train"
        Which part of the data to draw from.
    split_by : {"image", "region"}, default="image"
        How train and test are separated.

        - ``"image"``: every image belongs to exactly one split, fixed in the
          catalog (:func:`available_images`): ``china`` is train and
          ``flower`` is test; with scikit-image, ``camera``, ``astronaut``,
          ``coffee``, ``rocket``, ``grass`` and ``motorcycle_left`` are
          train and ``chelsea``, ``gravel`` and ``moon`` are test. With
          ``images`` restricted so that a split has no image, that split
          raises ``ValueError``.
        - ``"region"``: every image is cut into its left 75 % of columns
          (train) and its right 25 % (test). Each region is whitened on its
          own, so the two splits share no pixel and no filter support, but
          they do share scenes. Useful when only the two scikit-learn images
          are available and training on one image is too little.
    images : "auto", "sklearn", str or list of str, default="auto"
        ``"auto"``: every image available offline (this depends on whether
        scikit-image is installed; pass names for a fixed data set);
        ``"sklearn"``: ``["china", "flower"]``; or image names.
    random_state : int, RandomState instance or None, default=None
        Seeds the patch positions.
    return_images : bool, default=False
        Also return where the patches come from.

    Returns
    -------
    patches : ndarray of shape (n_patches, patch_size ** 2)
        float64 patches, each with zero mean.
    info : :class:`~sklearn.utils.Bunch`
        Only when ``return_images=True``. Fields: ``images`` (list of the
        prepared, read-only 2D arrays the patches were cut from), ``names``
        (their image names), ``parts`` (``"all"``, ``"train"`` or ``"test"``:
        the region of the image), ``image_index`` (ndarray of shape
        (n_patches,): index into ``images`` of each patch), ``positions``
        (ndarray of shape (n_patches, 2): row and column of each patch's
        top-left pixel in its image).

    Examples
    --------
    >>> from sklearn_wlsc.datasets import load_natural_image_patches
    >>> Y = load_natural_image_patches(8, 500, images="sklearn", random_state=0)
    >>> Y.shape
    (500, 64)
    >>> bool(abs(Y.mean(axis=1)).max() < 1e-12)
    True
    """
    patch_size = check_count(patch_size, "patch_size", minimum=2)
    n_patches = check_count(n_patches, "n_patches")
    whiten = check_bool(whiten, "whiten")
    return_images = check_bool(return_images, "return_images")
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}.")
    if split_by not in ("image", "region"):
        raise ValueError(f"split_by must be 'image' or 'region', got {split_by!r}.")
    names = _resolve_images(images)

    sources = []  # (name, part)
    for name in names:
        if split_by == "image":
            if split in ("all", _CATALOG[name][2]):
                sources.append((name, "all"))
        else:
            parts = ("train", "test") if split == "all" else (split,)
            sources.extend((name, part) for part in parts)
    if not sources:
        raise ValueError(
            f"no image of {names} belongs to split={split!r} under split_by='image'; "
            "use more images or split_by='region'."
        )
    prepared = [_prepared_image(name, part, bool(whiten)) for name, part in sources]
    # number of valid top-left positions per image
    shapes = np.array([im.shape for im in prepared])
    n_rows = shapes[:, 0] - patch_size + 1
    n_cols = shapes[:, 1] - patch_size + 1
    if np.any(n_rows < 1) or np.any(n_cols < 1):
        raise ValueError(f"patch_size={patch_size} is larger than an image ({shapes.min(0)}).")
    counts = n_rows * n_cols

    rng = check_random_state(random_state)
    flat = rng.randint(0, counts.sum(), size=n_patches)
    image_index = np.searchsorted(np.cumsum(counts), flat, side="right")
    local = flat - np.concatenate(([0], np.cumsum(counts)[:-1]))[image_index]
    rows = local // n_cols[image_index]
    cols = local % n_cols[image_index]

    patches = np.empty((n_patches, patch_size * patch_size))
    offsets = np.arange(patch_size)
    for k, im in enumerate(prepared):
        sel = np.flatnonzero(image_index == k)
        if sel.size:
            r = rows[sel][:, None, None] + offsets[None, :, None]
            c = cols[sel][:, None, None] + offsets[None, None, :]
            patches[sel] = im[r, c].reshape(sel.size, -1)
    patches -= patches.mean(axis=1, keepdims=True)
    if not return_images:
        return patches
    info = Bunch(
        images=prepared,
        names=[name for name, _ in sources],
        parts=[part for _, part in sources],
        image_index=image_index,
        positions=np.column_stack([rows, cols]),
    )
    return patches, info
