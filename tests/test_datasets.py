"""Tests of the offline natural-image patches: shapes, DC removal,
whitening, the train/test split and network independence."""

import socket

import numpy as np
import pytest

from sklearn_wlsc import datasets
from sklearn_wlsc.datasets import available_images, load_natural_image_patches, whiten_image


def _spectral_slope(patches, p):
    """Log-log slope of the radially averaged power spectrum of the patches
    between 0.06 and 0.35 cycles/pixel."""
    power = (np.abs(np.fft.fft2(patches.reshape(-1, p, p))) ** 2).mean(axis=0)
    fy, fx = np.meshgrid(np.fft.fftfreq(p), np.fft.fftfreq(p), indexing="ij")
    f = np.hypot(fx, fy).ravel()
    keep = (f > 0.06) & (f < 0.35)
    return np.polyfit(np.log(f[keep]), np.log(power.ravel()[keep]), 1)[0]


@pytest.mark.parametrize("split", ["train", "test", "all"])
def test_patches_shape_and_zero_mean(split):
    Y = load_natural_image_patches(10, 300, split=split, random_state=0)
    assert Y.shape == (300, 100) and Y.dtype == np.float64
    np.testing.assert_allclose(Y.mean(axis=1), 0, atol=1e-12)
    assert np.all(np.isfinite(Y)) and Y.std() > 0.1


def test_patches_load_with_network_off(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    datasets._gray_image.cache_clear()
    datasets._prepared_image.cache_clear()
    Y = load_natural_image_patches(8, 50, images="sklearn", random_state=0)
    assert Y.shape == (50, 64)


def test_whitened_spectrum_flatter_than_raw():
    p = 16
    raw = load_natural_image_patches(p, 2000, whiten=False, images="sklearn", random_state=0)
    white = load_natural_image_patches(p, 2000, whiten=True, images="sklearn", random_state=0)
    slope_raw, slope_white = _spectral_slope(raw, p), _spectral_slope(white, p)
    assert slope_raw < -1.5  # natural images: about 1/f^2
    assert abs(slope_white) < 0.5 * abs(slope_raw)


def test_whiten_image_flattens_a_power_law_image():
    rng = np.random.default_rng(0)
    n = 128
    fy, fx = np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij")
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0
    image = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) / f).real  # 1/f^2 power
    white = whiten_image(image)
    assert white.shape == image.shape
    assert white.mean() == pytest.approx(0, abs=1e-12) and white.std() == pytest.approx(1)
    power = np.abs(np.fft.fft2(white)) ** 2
    low = power[(f > 0.05) & (f < 0.1)].mean()
    mid = power[(f > 0.2) & (f < 0.3)].mean()
    assert 0.3 < mid / low < 3  # flat, against (0.25/0.075)^2 ~ 11 before
    np.testing.assert_array_equal(whiten_image(np.ones((8, 8))), 0)


def test_split_by_image_shares_no_image():
    _, train = load_natural_image_patches(8, 200, split="train", random_state=0, return_images=True)
    _, test = load_natural_image_patches(8, 200, split="test", random_state=0, return_images=True)
    assert set(train.names).isdisjoint(test.names)
    assert set(train.names) | set(test.names) == set(available_images())
    assert {"china"} <= set(train.names) and {"flower"} <= set(test.names)
    assert all(part == "all" for part in train.parts + test.parts)


def test_split_by_region_shares_no_pixel():
    kw = {"images": "sklearn", "split_by": "region", "random_state": 0, "return_images": True}
    _, train = load_natural_image_patches(8, 200, split="train", **kw)
    _, test = load_natural_image_patches(8, 200, split="test", **kw)
    assert train.names == test.names == ["china", "flower"]
    for tr, te in zip(train.images, test.images):
        assert tr.shape[0] == te.shape[0] == 427
        assert tr.shape[1] + te.shape[1] == 640  # the two regions tile the image
        assert tr.shape[1] == 480


def test_return_images_positions_reproduce_patches():
    Y, info = load_natural_image_patches(
        6, 40, images="sklearn", split="all", random_state=1, return_images=True
    )
    assert info.image_index.shape == (40,) and info.positions.shape == (40, 2)
    for k in range(40):
        r, c = info.positions[k]
        patch = info.images[info.image_index[k]][r : r + 6, c : c + 6].ravel()
        np.testing.assert_allclose(Y[k], patch - patch.mean(), atol=1e-12)
    assert not info.images[0].flags.writeable


def test_random_state_reproducible():
    a = load_natural_image_patches(8, 100, random_state=3)
    b = load_natural_image_patches(8, 100, random_state=3)
    c = load_natural_image_patches(8, 100, random_state=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_optional_skimage_images_read_from_package_dir(tmp_path, monkeypatch):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "coffee.png")
    Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8)).save(tmp_path / "moon.png")
    monkeypatch.setattr(datasets, "_skimage_data_dir", lambda: tmp_path)
    datasets._gray_image.cache_clear()
    datasets._prepared_image.cache_clear()
    try:
        assert available_images() == {
            "china": "train",
            "flower": "test",
            "coffee": "train",
            "moon": "test",
        }
        Y, info = load_natural_image_patches(
            8, 100, images=["coffee", "moon"], split="all", random_state=0, return_images=True
        )
        assert Y.shape == (100, 64) and info.names == ["coffee", "moon"]
        assert info.images[0].shape == (40, 50)
        with pytest.raises(ValueError, match="scikit-image"):
            load_natural_image_patches(8, 10, images=["camera"])
    finally:
        datasets._gray_image.cache_clear()
        datasets._prepared_image.cache_clear()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"patch_size": 1}, "patch_size"),
        ({"n_patches": 0}, "n_patches"),
        ({"split": "val"}, "split"),
        ({"split_by": "pixel"}, "split_by"),
        ({"images": ["lena"]}, "unknown"),
        ({"images": ["china"], "split": "test"}, "no image"),
        ({"images": ["china", "china"]}, "duplicates"),
        ({"patch_size": 500}, "larger"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_natural_image_patches(**{"n_patches": 10, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_patches": True}, "n_patches must be an integer"),
        ({"patch_size": 8.0}, "patch_size must be an integer"),
        ({"whiten": "no"}, "whiten must be True or False"),
        ({"return_images": 1}, "return_images must be True or False"),
        ({"images": 3}, "images must be"),
        ({"images": ["china", 2]}, "images must be"),
    ],
)
def test_arguments_of_the_wrong_kind(kwargs, match):
    with pytest.raises(TypeError, match=match):
        load_natural_image_patches(**{"n_patches": 10, **kwargs})


def test_image_names_from_any_iterable():
    ref = load_natural_image_patches(8, 20, images=["china", "flower"], random_state=0)
    for names in (np.array(["china", "flower"]), iter(["china", "flower"]), ("china", "flower")):
        got = load_natural_image_patches(8, 20, images=names, random_state=0)
        np.testing.assert_array_equal(got, ref)


def test_empty_image_list():
    with pytest.raises(ValueError, match="images is empty"):
        load_natural_image_patches(8, 10, images=[])


@pytest.mark.parametrize(
    ("image", "kwargs", "match"),
    [
        (np.full((8, 8), np.nan), {}, "NaN"),
        (np.random.default_rng(0).random(32), {}, "Expected 2D array"),
        (np.ones((8, 8)) + 1j, {}, "Complex data not supported"),
        (np.zeros((0, 8)), {}, "0 sample"),
        (np.ones((8, 8)), {"f0": 0.0}, "f0"),
    ],
)
def test_whiten_image_refuses_bad_input(image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        whiten_image(image, **kwargs)
