"""Batches: layouts, limits, shuffling, dynamic binarization, dtype, and data that stays on the backend."""

import numpy as np
import pytest

import tinyae
from tinyae import backend
from tinyae.data import Batches, load_mnist, mnist
from tinyae.backend import strict
from tests.conftest import BACKEND, to_numpy


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setitem(mnist.MIRRORS, "mnist", ())  # the bundled copy or an error, never the network


@pytest.fixture(scope="module")
def test_split():
    return load_mnist("test")


def numbered_images(count: int) -> np.ndarray:
    """uint8 images whose first two pixels spell their index, so a batch row tells which image it is."""
    images = np.random.default_rng(1).integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    images[:, 0, 0], images[:, 0, 1] = np.arange(count) % 256, np.arange(count) // 256
    return images


def indices(batch) -> list[int]:
    pixels = np.rint(to_numpy(batch).reshape(len(batch), -1)[:, :2] * 255).astype(int)
    return (pixels[:, 0] + 256 * pixels[:, 1]).tolist()


def epoch_indices(batches) -> list[int]:
    return [i for batch in batches for i in indices(batch)]


@pytest.mark.parametrize("layout, shape", [("flat", (784,)), ("image", (1, 28, 28))])
def test_layouts_and_batch_shapes(layout, shape):
    batches = Batches(numbered_images(10), batch_size=4, layout=layout)
    assert len(batches) == 3
    assert [tuple(batch.shape) for batch in batches] == [(4, *shape), (4, *shape), (2, *shape)]


def test_drop_last_and_limit():
    images, labels = numbered_images(10), np.arange(10) % 10
    batches = Batches(images, labels, batch_size=4, drop_last=True)
    assert len(batches) == 2 and [len(b) for b in batches] == [4, 4]
    limited = Batches(images, labels, batch_size=4, limit=6)
    assert limited.num_images == 6 and len(limited) == 2
    assert epoch_indices(limited) == list(range(6)) and limited.labels.tolist() == list(range(6))
    assert isinstance(limited.labels, np.ndarray)
    assert Batches(images, limit=100).num_images == 10


def test_pixels_scaled_to_unit_interval_in_default_dtype(test_split):
    images, labels = test_split
    batches = Batches(images, labels, batch_size=256, limit=1000)
    batch = next(iter(batches))
    assert batch.dtype == np.float32 and not batch.requires_grad
    np.testing.assert_array_equal(to_numpy(batch), (images[:256].reshape(256, -1) / np.float32(255)))
    assert to_numpy(batch).min() == 0 and to_numpy(batch).max() == 1
    tinyae.set_default_dtype("float64")
    assert next(iter(Batches(images, batch_size=8, binarize=True))).dtype == np.float64


def test_batches_live_on_the_active_backend():
    batches = Batches(numbered_images(10), batch_size=4, shuffle=True, binarize=True)
    expected_type = {"numpy": np.ndarray, "strict": strict.StrictArray}.get(BACKEND)
    for batch in batches:
        assert isinstance(batch, tinyae.Tensor) and batch.backend == tinyae.get_backend() == BACKEND
        if expected_type is not None:
            assert type(batch.data) is expected_type
    assert backend.backend_of(batches.data) == BACKEND


def test_an_epoch_moves_only_its_permutation_to_the_backend(monkeypatch):
    """The dataset moved once, at construction; batches are sliced on the backend (no copy per batch)."""
    xp = backend.module(BACKEND)
    if xp is np:
        pytest.skip("the numpy backend has no host-to-device copy")
    batches = Batches(numbered_images(50), batch_size=8, shuffle=True)
    moved, asarray = [], xp.asarray
    monkeypatch.setattr(xp, "asarray", lambda value, *a: moved.append(value.shape) or asarray(value, *a))
    assert len(list(batches)) == 7
    assert moved == [(50,)]


def test_every_image_once_per_epoch_in_a_new_order():
    batches = Batches(numbered_images(300), batch_size=32, shuffle=True, seed=3)
    first, second = epoch_indices(batches), epoch_indices(batches)
    assert sorted(first) == sorted(second) == list(range(300))
    assert first != second and first != list(range(300))
    assert epoch_indices(Batches(numbered_images(300), batch_size=32)) == list(range(300))


def test_same_seed_same_order_other_seed_other_order():
    def two_epochs(seed):
        batches = Batches(numbered_images(100), batch_size=16, shuffle=True, seed=seed)
        return epoch_indices(batches), epoch_indices(batches)

    assert two_epochs(7) == two_epochs(7)
    assert two_epochs(7) != two_epochs(8)


def test_state_restores_the_following_epochs():
    batches = Batches(numbered_images(64), batch_size=16, shuffle=True, binarize=True, seed=5)
    list(batches)
    state = batches.state()
    after = [to_numpy(batch) for batch in batches]
    other = Batches(numbered_images(64), batch_size=16, shuffle=True, binarize=True, seed=99)
    other.set_state(state)
    for expected, batch in zip(after, other, strict=True):
        np.testing.assert_array_equal(to_numpy(batch), expected)


def test_a_generator_is_used_as_given():
    generator = np.random.default_rng(11)
    batches = Batches(numbered_images(40), batch_size=8, shuffle=True, seed=generator)
    order = epoch_indices(batches)
    assert order == np.random.default_rng(11).permutation(40).tolist()
    assert batches.state() == generator.bit_generator.state


def test_dynamic_binarization(test_split):
    images, _ = test_split
    batches = Batches(images, batch_size=500, limit=2000, binarize=True, seed=0)
    first = np.concatenate([to_numpy(batch) for batch in batches])
    second = np.concatenate([to_numpy(batch) for batch in batches])
    intensity = images[:2000].reshape(2000, -1) / 255.0
    assert first.dtype == np.float32 and set(np.unique(first)) == {0.0, 1.0}
    assert abs(first.mean() - intensity.mean()) < 0.003  # σ of the mean is about 0.0003
    assert (first[intensity == 0] == 0).all() and (first[intensity == 1] == 1).all()
    assert (first != second).mean() > 0.02  # a fresh draw each epoch
    mid = (intensity > 0.4) & (intensity < 0.6)  # per pixel: ones with probability = intensity
    assert abs((first[mid] + second[mid]).mean() / 2 - intensity[mid].mean()) < 0.01


def test_bad_arguments():
    images = numbered_images(4)
    with pytest.raises(ValueError, match="unknown layout 'square'; expected one of flat, image"):
        Batches(images, layout="square")
    with pytest.raises(ValueError, match="batch_size"):
        Batches(images, batch_size=0)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        Batches(images, np.zeros(3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Batches(images * 2.0)


@pytest.mark.parametrize("shuffle, binarize", [(False, False), (True, False), (False, True)],
                         ids=["in order", "shuffled", "binarized"])
def test_a_write_into_a_batch_on_a_device_does_not_reach_the_dataset(shuffle, binarize):
    """CuPy arrays have no read-only flag: a batch that viewed the dataset (in order, as the test set is
    read) would let an in-place write corrupt it silently there."""
    batches = Batches(numbered_images(4), batch_size=2, shuffle=shuffle, binarize=binarize,
                      backend_name="strict")
    before = to_numpy(batches.data)
    for batch in batches:
        batch.data[...] = 7.0
    np.testing.assert_array_equal(to_numpy(batches.data), before)


@pytest.mark.skipif(BACKEND != "numpy", reason="NumPy arrays only carry the read-only flag")
def test_batches_are_read_only_views_on_numpy():
    batch = next(iter(Batches(numbered_images(4), batch_size=2)))
    with pytest.raises(ValueError, match="read-only"):
        batch.data[0, 0] = 1
