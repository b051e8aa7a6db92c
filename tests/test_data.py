"""Embedded data, generators, patch pipeline and tfds loaders (offline)."""
import jax
import numpy as np
import pytest

from vision_jax import data


def test_natural_images_grey_and_colour():
    grey = data.natural_images()
    colour = data.natural_images(grey=False)
    assert len(grey) == len(colour) == len(data.list_natural_images()) >= 6
    for g, c in zip(grey, colour):
        assert g.ndim == 2 and c.shape == g.shape + (3,)
        assert g.dtype == np.float32 and 0 <= g.min() and g.max() <= 1 and g.std() > 0.05
        np.testing.assert_allclose(c @ np.array([0.2989, 0.5870, 0.1140], np.float32), g, atol=1e-3)
    assert len(data.natural_images(names="camera")) == 1


def test_digits_are_real_and_balanced():
    images, labels = data.load_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    # Handwritten strokes: bright centre, dark border, mostly black background.
    assert images[:, 10:18, 10:18].mean() > 3 * images[:, :3, :].mean()
    assert 0.6 < (images == 0).mean() < 0.9


def test_pink_noise_has_the_requested_spectral_slope(key):
    x = np.asarray(data.pink_noise(key, (8, 128, 128), exponent=1.0))
    np.testing.assert_allclose(x.mean(axis=(-2, -1)), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(-2, -1)), 1, rtol=1e-4)
    power = (np.abs(np.fft.fft2(x)) ** 2).mean(0)
    f = data.radial_frequency((128, 128))
    bands = [(0.02, 0.04), (0.08, 0.16)]
    p = [power[(f >= lo) & (f < hi)].mean() for lo, hi in bands]
    slope = np.log(p[1] / p[0]) / np.log(np.mean(bands[1]) / np.mean(bands[0]))
    assert -2.4 < slope < -1.6  # power ~ f^-2 for an amplitude ~ 1/f


def test_dead_leaves(key):
    img = np.asarray(data.dead_leaves(key, (64, 64), n_disks=400, r_min=2.0, r_max=16.0))
    assert img.shape == (64, 64) and 0 <= img.min() and img.max() <= 1
    assert 5 < len(np.unique(img)) <= 401  # piecewise constant: one grey level per visible disk
    again = np.asarray(data.dead_leaves(key, (64, 64), n_disks=400, r_min=2.0, r_max=16.0))
    np.testing.assert_array_equal(img, again)
    batch = jax.vmap(lambda k: data.dead_leaves(k, (32, 32), n_disks=50))(jax.random.split(key, 3))
    assert batch.shape == (3, 32, 32)


def test_whitening_flattens_the_spectrum_of_pink_noise(key):
    x = np.asarray(data.pink_noise(key, (256, 256)), np.float64)
    w = data.whiten(x, bandpass=False)
    f = data.radial_frequency((256, 256))
    power = np.abs(np.fft.fft2(w)) ** 2
    mid = [power[(f >= lo) & (f < hi)].mean() for lo, hi in [(0.05, 0.08), (0.12, 0.18)]]
    raw = np.abs(np.fft.fft2(x)) ** 2
    raw_mid = [raw[(f >= lo) & (f < hi)].mean() for lo, hi in [(0.05, 0.08), (0.12, 0.18)]]
    # 1/f noise falls ~ 5x over these bands; whitened by f^1.4 it rises instead (f^0.8).
    assert raw_mid[1] / raw_mid[0] < 0.3
    assert 1.0 < mid[1] / mid[0] < 3.0


def test_extract_patches_pipeline(key):
    images = data.natural_images(names=("camera", "grass"))
    p = data.extract_patches(images, key=key, n_patches=301, patch_size=9, over_patches=4)
    assert p.shape == (301, 81) and p.dtype == np.float32
    mask = data.disk_mask(9).ravel()
    assert np.all(p[:, mask == 0] == 0)
    np.testing.assert_allclose(p.sum(1) / mask.sum(), 0, atol=0.2 * np.abs(p).max())
    again = data.extract_patches(images, key=key, n_patches=301, patch_size=9, over_patches=4)
    np.testing.assert_array_equal(p, again)
    other = data.extract_patches(images, key=jax.random.key(123), n_patches=301, patch_size=9, over_patches=4)
    assert not np.array_equal(p, other)


def test_over_patches_keeps_the_highest_variance_windows(key):
    img = np.zeros((64, 64), np.float32)
    img[:, 32:] = np.random.default_rng(0).standard_normal((64, 32))
    raw = data.extract_patches([img], key=key, n_patches=50, patch_size=8, over_patches=1, crop_size=None,
                               prefilter=False, whiten=False, mask=False)
    picked = data.extract_patches([img], key=key, n_patches=50, patch_size=8, over_patches=8, crop_size=None,
                                  prefilter=False, whiten=False, mask=False)
    assert picked.std(1).mean() > raw.std(1).mean()
    assert (picked.std(1) > 0.5).mean() > 0.9


def test_window_std_matches_direct_computation():
    from vision_jax.data._patches import _window_std

    img = np.random.default_rng(1).standard_normal((30, 40))
    ys, xs = np.array([0, 5, 22]), np.array([0, 31, 10])
    expected = [img[y:y + 8, x:x + 8].std() for y, x in zip(ys, xs)]
    np.testing.assert_allclose(_window_std(img, 8, ys, xs), expected, rtol=1e-9)


def test_one_over_f_dictionary(key):
    d = data.one_over_f_dictionary(key, 50, 9, image_size=64)
    assert d.shape == (50, 81)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: data.natural_images(names=["lena"]), ValueError, ["names", "lena"]),
        (lambda: data.natural_images(dtype=np.int32), TypeError, ["dtype", "floating"]),
        (lambda: data.pink_noise(jax.random.key(0), (0, 8)), ValueError, ["shape[0]", ">= 1"]),
        (lambda: data.pink_noise(jax.random.key(0), (8,)), ValueError, ["shape", "(..., H, W)"]),
        (lambda: data.pink_noise(jax.random.key(0), (8, 8), exponent=float("nan")), ValueError, ["exponent", "finite"]),
        (lambda: data.whiten(np.full((8, 8), np.nan)), ValueError, ["image", "finite"]),
        (lambda: data.dead_leaves(jax.random.key(0), (8, 8), r_min=-1.0), ValueError, ["r_min", "positive"]),
        (lambda: data.dead_leaves(jax.random.key(0), (8, 8), r_min=4.0, r_max=2.0), ValueError, ["r_max", "larger"]),
        (lambda: data.extract_patches([], key=0, n_patches=4), ValueError, ["images", "empty"]),
        (lambda: data.extract_patches([np.ones((3, 8, 8), np.float32)], key=0, n_patches=4), ValueError, ["images[0]", "(H, W)"]),
        (lambda: data.extract_patches([np.ones((20, 20), np.float32)], key=0, n_patches=4, patch_size=21, crop_size=None), ValueError, ["images[0]", "21x21"]),
        (lambda: data.extract_patches([np.ones((64, 64), np.float32)], key=0, n_patches=0), ValueError, ["n_patches", ">= 1"]),
        (lambda: data.extract_patches([np.ones((64, 64), np.float32)], key=0, n_patches=4, patch_size=32, crop_size=16),
         ValueError, ["patch_size", "crop_size = 16"]),
        (lambda: data.extract_patches([np.full((64, 64), np.nan, np.float32)], key=0, n_patches=4, crop_size=None), ValueError, ["images[0]", "finite"]),
        (lambda: data.extract_patches([np.ones((64, 64), np.float32)], key="x", n_patches=4), TypeError, ["key"]),
        (lambda: data.load_dataset("imagenet"), ValueError, ["name", "mnist"]),
    ],
)
def test_bad_input_names_the_argument(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_load_dataset_from_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6, data_dir=str(tmp_path)):
        images, labels = data.load_dataset("mnist", "train", data_dir=tmp_path)
        assert images.shape == (6, 28, 28, 1) and images.dtype == np.uint8 and labels.shape == (6,)
        images, labels = data.load_dataset("cifar10", "test", data_dir=tmp_path, max_examples=4)
        assert images.shape == (4, 32, 32, 3) and labels.dtype == np.int32


def test_load_dataset_not_prepared_says_how_to_prepare(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FileNotFoundError) as info:
        data.load_dataset("mnist", data_dir=tmp_path)
    message = str(info.value)
    assert "not prepared" in message and "tfds build mnist" in message and str(tmp_path) in message
