"""Data: MNIST and Fashion-MNIST, verified, and mini-batches on the active backend.

    images, labels = tinyae.data.load_mnist("train")          # NumPy uint8 (60000, 28, 28), (60000,)
    train = tinyae.data.Batches(images, labels, batch_size=128, shuffle=True, seed=0)
    for x in train:                                            # Tensors (128, 784) in [0, 1], float32
        ...

``idx`` reads the IDX format; ``mnist`` finds, downloads and verifies the files; ``batches`` batches them.
"""

from .batches import Batches
from .idx import DataError, read_idx
from .mnist import DataNotFoundError, load_mnist

__all__ = ["Batches", "DataError", "DataNotFoundError", "load_mnist", "read_idx"]
