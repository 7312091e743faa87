"""What every example shares: its command line, the MNIST batches, and the training loop.

Not an example itself: the scripts next to it import it (``from _common import ...``), which works because
Python puts a script's own folder first on ``sys.path``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import tinyae
from tinyae import optim
from tinyae.app import train
from tinyae.data import Batches, load_mnist


def parse_args(script: str, description: str, limit: int = 10_000, epochs: int = 5, test_limit: int = 1000,
               batch_size: int = 128, extra=None) -> argparse.Namespace:
    """The options of every example; the defaults keep each run under two minutes on a 2-core CPU.

    ``script`` is the caller's ``__file__``: its figures go to examples/out/<script name>/ unless ``--out``.
    ``extra(parser)`` may add the script's own options.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--limit", type=int, default=limit, help=f"training images ({limit})")
    parser.add_argument("--test-limit", type=int, default=test_limit, help=f"test images ({test_limit})")
    parser.add_argument("--epochs", type=int, default=epochs, help=f"passes over the images ({epochs})")
    parser.add_argument("--batch-size", type=int, default=batch_size, help=f"({batch_size})")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights, the data order and the noise")
    parser.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "strict"],
                        help="where tensors live (strict: the CPU with CuPy's rules, to test for the GPU)")
    parser.add_argument("--out", type=Path, default=Path(script).parent / "out" / Path(script).stem,
                        help="folder for the figures (default examples/out/<script name>)")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    tinyae.set_backend(args.backend)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def mnist(args, layout: str = "flat") -> tuple[Batches, Batches]:
    """(training batches, shuffled each epoch; test batches, in order) of the first --limit / --test-limit
    images, as Tensors (B, 784) for the MLPs or (B, 1, 28, 28) for conv models, intensities in [0, 1]."""
    train_images, train_labels = load_mnist("train")
    test_images, test_labels = load_mnist("test")
    training = Batches(train_images, train_labels, batch_size=args.batch_size, shuffle=True, layout=layout,
                       limit=args.limit, seed=args.seed)
    test = Batches(test_images, test_labels, batch_size=500, layout=layout, limit=args.test_limit)
    return training, test


def fit(model, training: Batches, test: Batches, args, name: str = "", on_epoch=None) -> list[dict]:
    """Train ``model`` with Adam for --epochs epochs; return one record per epoch, in the format of
    ``tinyae.app.figures.loss_curves``: train_loss, test_loss and each loss part (nats per image).
    ``on_epoch(model, record)``, called after each epoch with the model in eval mode, may add to the record.

    Seed first (``tinyae.manual_seed``) for the same weights and noise on every run. The loop is the one of
    every tinyae (and PyTorch) model: forward to a scalar loss, zero the gradients, backward, step.
    """
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    history = []
    for epoch in range(1, args.epochs + 1):
        started, sums, seen = time.perf_counter(), {}, 0
        model.train()
        for x in training:
            total, parts = model.loss(x)  # the loss per image, and its parts ("recon", "kl", "sparsity")
            optimizer.zero_grad()
            total.backward()  # fills .grad of every parameter
            optimizer.step()
            for key, value in {"loss": total, **parts}.items():
                sums[key] = sums.get(key, 0.0) + value.item() * x.shape[0]
            seen += x.shape[0]
        if model.is_variational:  # report the −ELBO = recon + KL, whatever β (as tinyae train does)
            sums["loss"] = sums["recon"] + sums["kl"]
        record = {"epoch": epoch, **{f"train_{key}": value / seen for key, value in sums.items()}}
        record.update({f"test_{key}": value for key, value in train.evaluate(model, test).items()})
        model.eval()  # the figures and measures run the model in eval mode (no denoising corruption)
        if on_epoch is not None:
            on_epoch(model, record)
        history.append(record)
        print(f"{name:>10} epoch {epoch}/{args.epochs}: train {record['train_loss']:.2f}  test "
              f"{record['test_loss']:.2f} per image  ({time.perf_counter() - started:.1f} s)")
    return history


def first_images(test: Batches, n: int) -> tinyae.Tensor:
    """The first n test images, as one batch (in --layout)."""
    return next(iter(test))[:n]


def report(paths) -> None:
    """Say what was written."""
    for path in paths:
        print(f"wrote {path}")
