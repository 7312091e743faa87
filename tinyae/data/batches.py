"""Mini-batches of images on the active backend.

The whole dataset is moved to the backend once, as uint8, and scaled there to [0, 1]; every batch is then
sliced on the backend (a slice, or the epoch's permutation indexing the device array), so a CuPy run copies
nothing from the host per batch. Per epoch, the host sends only the permutation (N integers) when shuffling.

Randomness comes from one NumPy ``Generator`` (the ``seed`` argument), so a run repeats exactly and a
checkpoint can save and restore it (``state()`` / ``set_state()``). At the start of each epoch it draws the
permutation and, for dynamic binarization, a seed for that epoch's Bernoulli draws, which are made on the
backend batch by batch (on CuPy by a cuRAND generator seeded from it, so CuPy's draws differ from NumPy's).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .. import backend
from ..tensor import Tensor

LAYOUTS = ("flat", "image")


class Batches:
    """An iterable of mini-batches (Tensors without grad) over images, one full pass per ``iter()``.

    ``images``: NumPy uint8 (N, H, W) scaled by 1/255, or floats already in [0, 1]. ``labels``: optional
    NumPy (N,), kept on the host as ``self.labels`` for plotting. ``batch_size``; ``shuffle`` draws a fresh
    permutation each epoch; ``binarize`` replaces each pixel by a Bernoulli draw with its intensity as the
    probability, fresh each epoch (dynamic binarization); ``layout``: ``"flat"`` (B, H*W) or ``"image"``
    (B, 1, H, W); ``limit``: keep only the first ``limit`` images; ``drop_last``: skip a final short batch;
    ``seed``: an int, or a ``numpy.random.Generator`` used (and advanced) as is; ``dtype``: default
    ``tinyae.get_default_dtype()``; ``backend_name``: default the active backend; ``with_labels``: yield
    (images, labels) pairs, the labels an int64 Tensor (B,) on the backend, in the images' order (what a
    conditional model trains on).

    ``len()`` is the number of batches per epoch. A write into a batch never reaches the dataset: shuffled
    and binarized batches are new arrays; in order, a batch is a read-only view on NumPy (the dataset is
    marked read-only, so a write fails loudly) and a copy on a device, which has no read-only flag (one
    copy a batch: 9 µs for 128 × 784 float32 on a CPU, a few µs on a GPU, against milliseconds a step).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray | None = None,
        *,
        batch_size: int = 128,
        shuffle: bool = False,
        binarize: bool = False,
        layout: str = "flat",
        limit: int | None = None,
        drop_last: bool = False,
        seed: int | np.random.Generator | None = 0,
        dtype=None,
        backend_name: str | None = None,
        with_labels: bool = False,
    ):
        if not isinstance(images, np.ndarray) or images.ndim < 2:
            raise TypeError(f"Batches: expected NumPy images (N, H, W), got {type(images).__name__}")
        if layout not in LAYOUTS:
            raise ValueError(f"Batches: unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"Batches: batch_size must be a positive integer, got {batch_size!r}")
        if limit is not None and limit < 1:
            raise ValueError(f"Batches: limit must be a positive number of images, got {limit!r}")
        if with_labels and labels is None:
            raise ValueError("Batches: with_labels=True needs the labels")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"Batches: {len(images)} images but {len(labels)} labels")
        if images.dtype != np.uint8 and images.dtype.kind != "f":
            raise TypeError(f"Batches: expected uint8 or float images, got {images.dtype}")
        images = images[:limit]
        if images.dtype.kind == "f" and not (images.min() >= 0 and images.max() <= 1):
            raise ValueError("Batches: float images must be intensities in [0, 1]")

        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.binarize = bool(binarize)
        self.layout = layout
        self.drop_last = bool(drop_last)
        self.dtype = np.dtype(dtype or backend.get_default_dtype())
        self.backend = backend_name or backend.get_backend()
        self.labels = None if labels is None else np.asarray(labels)[:limit]
        self._rng = np.random.default_rng(seed)  # a Generator passed in is returned as is

        shape = (len(images), -1) if layout == "flat" else (len(images), 1, *images.shape[-2:])
        device = backend.module(self.backend).asarray(np.ascontiguousarray(images.reshape(shape)))
        scaled = device.astype(self.dtype)
        self.data = scaled / 255.0 if images.dtype == np.uint8 else scaled  # the dataset, on the backend
        if isinstance(self.data, np.ndarray):
            self.data.flags.writeable = False
        self.device_labels = None  # the labels on the backend, when batches carry them
        if with_labels:
            self.device_labels = backend.module(self.backend).asarray(self.labels.astype(np.int64))

    @property
    def num_images(self) -> int:
        return self.data.shape[0]

    def __len__(self) -> int:
        """The number of batches per epoch."""
        if self.drop_last:
            return self.num_images // self.batch_size
        return math.ceil(self.num_images / self.batch_size)

    def __iter__(self) -> Iterator[Tensor] | Iterator[tuple[Tensor, Tensor]]:
        """Start an epoch: draw its permutation and binarization seed now, then yield its batches."""
        order = None
        if self.shuffle:
            order = backend.to_backend(self._rng.permutation(self.num_images), self.backend)
        uniform = self._uniform_source(int(self._rng.integers(2**63))) if self.binarize else None
        return self._epoch(order, uniform)

    def _epoch(self, order, uniform) -> Iterator[Tensor] | Iterator[tuple[Tensor, Tensor]]:
        for number in range(len(self)):
            rows = slice(number * self.batch_size, (number + 1) * self.batch_size)
            batch = self.data[rows] if order is None else self.data[order[rows]]
            if uniform is not None:
                batch = (uniform(batch.shape) < batch).astype(self.dtype)
            elif order is None and type(batch) is not np.ndarray:
                batch = batch.copy()  # a view of the dataset, which a device cannot mark read-only
            images = Tensor._make(batch, False, None)  # no copy: the batch is already on the backend
            if self.device_labels is None:
                yield images
            else:
                labels = self.device_labels[rows] if order is None else self.device_labels[order[rows]]
                yield images, Tensor._make(labels, False, None)

    def _uniform_source(self, epoch_seed: int):
        """A function shape -> U[0, 1) draws on the backend, from a generator seeded for this epoch."""
        draw_dtype = self.dtype if self.dtype in (np.float32, np.float64) else np.dtype(np.float32)
        if self.backend == "cupy":
            generator = backend.module("cupy").random.RandomState(epoch_seed % 2**32)
            return lambda shape: generator.random_sample(shape, dtype=draw_dtype)
        generator = np.random.default_rng(epoch_seed)
        return lambda shape: backend.to_backend(generator.random(shape, dtype=draw_dtype), self.backend)

    # Checkpoints ------------------------------------------------------------------------------------------
    def state(self) -> dict:
        """The generator's state (plain ints and strings: ``json.dumps`` it to store it in a checkpoint).

        Taken between epochs, it makes every later epoch repeat exactly after ``set_state``.
        """
        return self._rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        """Restore a state returned by ``state()``."""
        self._rng.bit_generator.state = state

    def __repr__(self) -> str:
        return (
            f"Batches({self.num_images} images, batch_size={self.batch_size}, layout={self.layout!r}, "
            f"shuffle={self.shuffle}, binarize={self.binarize}, backend={self.backend!r}, dtype={self.dtype})"
        )
