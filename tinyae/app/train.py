"""Training: the loop behind ``tinyae train``, with metrics, checkpoints, resume and a NaN guard.

The run folder and every file in it belong to ``tinyae.app.run.Run`` (its docstring gives the write order
and how a killed run is continued); the trainer only asks it to append a metrics line, then save a
checkpoint, after each epoch.

Reproducibility: at the start of epoch e every tinyae generator is reseeded from (seed, e), and the data
order comes from the batch generator whose state the checkpoint keeps. So a run resumed from the
checkpoint of epoch e computes exactly what the uninterrupted run computed.

Gradient norms (``log_grad_norms``, ``tinyae train --log-grad-norms``). After each step's backward the
trainer takes, for each layer ℓ (each module that holds parameters, named by its state_dict prefix:
``fc1``, ``encoder.0``), the norm of the gradient of the step's loss over the layer's parameters,
‖∂L/∂θ_ℓ‖₂ = (Σ_{p ∈ ℓ} ‖∂L/∂p‖₂²)^½, and writes its mean over the epoch's steps into the epoch's metrics
record, ``"grad_norms": {layer: mean}``. The mean rather than the last step: one batch's gradient is
noisy, while the mean over every step follows the trend from epoch to epoch, so a layer whose gradient
fades (vanishing gradients; the encoder's μ and log σ² heads once the KL term has collapsed the
posterior onto the prior) shows as a curve falling by orders of magnitude. It is as deterministic as the
loss (the same steps in the same order), so a resumed run logs the same numbers. The sums stay on the
device until the epoch ends; with the option off (the default) a step does no extra work.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import backend, optim
from . import checkpoint
from .. import random as tinyae_random
from ..autograd import no_grad
from ..data import Batches, DataNotFoundError, load_mnist
from ..data.mnist import missing_from
from ..models import MODELS, image_layout
from .run import Run, RunError, holds_run


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


def default_config() -> dict:
    """The configuration of ``tinyae train`` with no arguments: the VAE of PyTorch's example."""
    return {"model": "vae", "model_config": {}, "dataset": "mnist", "data_dir": None, "binarize": False,
            "epochs": 10, "batch_size": 128, "lr": 1e-3, "optimizer": "adam", "seed": 0, "limit": None,
            "test_limit": None, "kl_warmup": 0, "backend": "numpy", "log_grad_norms": False}


RUN_DTYPE = "float32"  # the dtype of every run's parameters, whatever tinyae's default dtype is


def build_model(config: dict):
    """The model a config describes, with freshly initialized weights (seeded by the config's seed), in
    ``RUN_DTYPE``: a run trained by the command loads into a program that set another default dtype."""
    tinyae_random.manual_seed(config["seed"])
    default = backend.get_default_dtype()
    backend.set_default_dtype(RUN_DTYPE)
    try:
        return MODELS[config["model"]](**config["model_config"])
    finally:
        backend.set_default_dtype(default)


def build_optimizer(config: dict, model):
    kinds = {"adam": optim.Adam, "adamw": optim.AdamW, "sgd": optim.SGD}
    if config["optimizer"] == "sgd":
        return optim.SGD(model.parameters(), lr=config["lr"], momentum=0.9)
    return kinds[config["optimizer"]](model.parameters(), lr=config["lr"])


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s generators, derived from the run's seed."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def evaluation_seed(seed: int) -> int:
    """The seed of every test-set evaluation of a run (after each epoch, and ``tinyae eval``'s −ELBO): the
    same posterior samples each time, so the log's last test loss and ``tinyae eval``'s −ELBO agree."""
    return int(np.random.SeedSequence(seed, spawn_key=(1,)).generate_state(1)[0])


def load_data(config: dict) -> tuple[Batches, Batches]:
    """(train batches, shuffled and optionally binarized; test batches, in order) on the run's backend."""
    layout, conditional = image_layout(config["model"]), MODELS[config["model"]].is_conditional
    train_images, train_labels = load_split("train", config)
    test_images, test_labels = load_split("test", config)
    train = Batches(train_images, train_labels, batch_size=config["batch_size"], shuffle=True,
                    binarize=config["binarize"], layout=layout, limit=config["limit"], seed=config["seed"],
                    with_labels=conditional)
    test = Batches(test_images, test_labels, batch_size=500, layout=layout, limit=config["test_limit"],
                   binarize=config["binarize"], seed=config["seed"] + 1, with_labels=conditional)
    return train, test


def load_split(split: str, config: dict):
    """(images, labels) of one split of the run's dataset; a data_dir must hold the files itself (no
    silent fallback to the bundled copy), and so must a $TINYAE_DATA that is set."""
    variable = os.environ.get("TINYAE_DATA")
    if variable and not Path(variable).expanduser().is_dir():
        raise DataNotFoundError(f"TINYAE_DATA={variable!r} is not a folder; expected the folder of the IDX "
                                "files (or unset it)")
    if config["data_dir"] is not None:
        missing = missing_from(config["data_dir"], split, config["dataset"])
        if missing:
            raise DataNotFoundError(f"--data-dir {config['data_dir']} holds no {', '.join(missing)} (raw or "
                                    f".gz, in it or in its {config['dataset']} subfolder)")
    return load_mnist(split, config["dataset"], config["data_dir"])


def layers_of(model) -> dict[str, list]:
    """{layer: its parameters}: each module that holds parameters, by its state_dict prefix ("fc1"; a
    parameter of the model itself is a layer of its own name), in registration order."""
    layers: dict[str, list] = {}
    for name, parameter in model.named_parameters():
        prefix, _, _ = name.rpartition(".")
        layers.setdefault(prefix or name, []).append(parameter)
    return layers


def layer_gradient_norms(layers: dict[str, list]) -> dict:
    """{layer: ‖∂L/∂θ_layer‖₂} from the parameters' ``.grad`` (a missing one counts as 0), as 0-d backend
    arrays (no host read): the square root of the sum of each parameter's squared norm (a BLAS dot)."""
    norms = {}
    for layer, parameters in layers.items():
        squares = [backend.array_module(p.grad).dot(p.grad.ravel(), p.grad.ravel())
                   for p in parameters if p.grad is not None]
        norms[layer] = sum(squares[1:], squares[0]) ** 0.5 if squares else 0.0
    return norms


def model_inputs(batch) -> tuple:
    """The arguments of ``model.loss`` for one batch: (images,), or (images, labels) for a conditional
    model's batches (``Batches(with_labels=True)``)."""
    return batch if isinstance(batch, tuple) else (batch,)


def loss_values(model, total, parts) -> dict:
    """The backend arrays written to the metrics: "loss" and each part. "loss" is the negative ELBO
    (recon + KL, whatever β and the KL warm-up weight) for VAEs, the training objective for the others."""
    values = {"loss": total.data, **{name: part.data for name, part in parts.items()}}
    if model.is_variational:
        values["loss"] = values["recon"] + values["kl"]
    return values


def evaluate(model, batches: Batches, seed: int | None = None) -> dict[str, float]:
    """The loss and its parts, averaged per image over all batches (eval mode, no graph); summed on the
    device and read once at the end (on a GPU each read waits for the queued batches). A VAE's loss draws
    one posterior sample per image: ``seed``, when given, seeds ``tinyae.random`` first."""
    if seed is not None:
        tinyae_random.manual_seed(seed)
    model.eval()
    totals: dict[str, object] = {}
    with no_grad():
        for batch in batches:
            x, *condition = model_inputs(batch)
            total, parts = model.loss(x, *condition)
            for name, value in loss_values(model, total, parts).items():
                totals[name] = totals.get(name, 0) + value * x.shape[0]
    model.train()
    backend.check_device_asserts()
    return {name: float(value) / batches.num_images for name, value in totals.items()}


class Trainer:
    """Trains the model of ``config`` in the run folder ``run_dir``, one epoch at a time, checkpointing after
    each.

    It builds everything that can fail first (backend, model, optimizer, data), and only then creates the
    run folder, or opens the run it already holds (repairing it: ``Run.open``) and continues from its
    checkpoint: ``epoch`` is where training stands. The caller checks that ``config`` is the run's.
    """

    def __init__(self, config: dict, run_dir: Path | str, progress: bool = True):
        self.config, self.progress = config, progress
        backend.set_backend(config["backend"])
        self.model = build_model(config)
        self.optimizer = build_optimizer(config, self.model)
        self.train_batches, self.test_batches = load_data(config)
        self.test_state = self.test_batches.state()  # every evaluation sees the same (binarized) test set
        # host reads of the loss: rarely on a device (strict, CuPy's stand-in, reads as CuPy does)
        self.sync_every = 1 if config["backend"] == "numpy" else 25
        self.run = Run.open(run_dir, writable=True) if holds_run(run_dir) else Run.create(run_dir, config)
        self.epoch = 0
        if self.run.epoch > 0:
            saved = self.run.load_checkpoint(checkpoint.expected_arrays(self.model.state_dict()))
            self.model.load_state_dict(saved["model"])
            try:
                self.optimizer.load_state_dict(saved["optimizer"]["optimizer"])
                self.train_batches.set_state(saved["optimizer"]["data"])
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
                raise checkpoint.CheckpointError(f"{self.run.path / 'checkpoint.npz'} has a damaged optimizer "
                                                 f"or data state ({type(error).__name__}: {error})") from None
            self.epoch = saved["epoch"]

    def save(self) -> None:
        """Save the state after ``epoch`` as the run's checkpoint."""
        state = {"optimizer": self.optimizer.state_dict(), "data": self.train_batches.state()}
        self.run.save_checkpoint(self.config, self.model.state_dict(), state, self.epoch)

    # The loop -----------------------------------------------------------------------------------------
    def kl_weight(self, epoch: int, step: int) -> float:
        """Linear KL warm-up: the weight of β·KL grows from 0 to 1 over ``kl_warmup`` epochs."""
        warmup = self.config["kl_warmup"]
        if not warmup:
            return 1.0
        return min(1.0, (epoch + step / len(self.train_batches)) / warmup)

    def train_epoch(self, on_step: Callable[[int, float], None] | None = None) -> dict:
        """One pass over the training set; returns the per-image averages of the loss and its parts, and with
        ``log_grad_norms`` under "grad_norms" each layer's gradient norm averaged over the steps."""
        epoch = self.epoch
        tinyae_random.manual_seed(epoch_seed(self.config["seed"], epoch))
        model, optimizer = self.model, self.optimizer
        model.train()
        sums: dict[str, object] = {}
        seen = 0
        unread: list = []  # the losses of the steps since the last host read (device arrays on the GPU)
        layers = layers_of(model) if self.config["log_grad_norms"] else None
        norm_sums: dict[str, object] = {}
        for step, batch in enumerate(self.train_batches):
            x, *condition = model_inputs(batch)
            if model.is_variational:
                model.kl_weight = self.kl_weight(epoch, step)
            total, parts = model.loss(x, *condition)
            optimizer.zero_grad()
            total.backward()
            if layers is not None:
                for layer, norm in layer_gradient_norms(layers).items():
                    norm_sums[layer] = norm_sums.get(layer, 0) + norm
            optimizer.step()
            values = loss_values(model, total, parts)
            for name, value in values.items():  # summed on the device: no sync
                sums[name] = sums.get(name, 0) + value * x.shape[0]
            seen += x.shape[0]
            unread.append(values["loss"])
            if (step + 1) % self.sync_every == 0 or step + 1 == len(self.train_batches):
                backend.check_device_asserts()  # bad input found on the device since the last read
                running = float(sums["loss"]) / seen
                if not math.isfinite(running):  # name the first bad step among those not read until now
                    offset, bad = next((i, float(v)) for i, v in enumerate(unread) if not math.isfinite(v))
                    kept = (f"kept the checkpoint of epoch {epoch} in {self.run.path}" if epoch
                            else f"{self.run.path} has no checkpoint yet")
                    raise NonFiniteLossError(f"the training loss became {bad} in epoch {epoch + 1}, at step "
                                             f"{step + 2 - len(unread) + offset}; stopped, and {kept}")
                unread.clear()
                if on_step is not None:
                    on_step(step + 1, running)
        averages = {name: float(value) / seen for name, value in sums.items()}
        if layers is not None:
            steps = len(self.train_batches)
            averages["grad_norms"] = {layer: float(value) / steps for layer, value in norm_sums.items()}
        return averages

    def fit(self, epochs: int, log: Callable[[str], None] = print) -> list[dict]:
        """Train until ``epochs`` epochs are done, writing metrics and a checkpoint after each."""
        history = []
        while self.epoch < epochs:
            started = time.perf_counter()
            bar = ProgressBar(len(self.train_batches), f"epoch {self.epoch + 1}/{epochs}",
                                self.config["batch_size"], self.progress)
            try:
                train = self.train_epoch(lambda step, loss: bar.update(step, loss))
            finally:
                bar.close()
            self.test_batches.set_state(self.test_state)
            test = evaluate(self.model, self.test_batches, evaluation_seed(self.config["seed"]))
            self.epoch += 1
            grad_norms = train.pop("grad_norms", None)
            record = {"epoch": self.epoch, "train_loss": train.pop("loss"), "test_loss": test.pop("loss")}
            record.update({f"train_{k}": v for k, v in train.items()})
            record.update({f"test_{k}": v for k, v in test.items()})
            if grad_norms is not None:
                record["grad_norms"] = grad_norms
            record["seconds"] = time.perf_counter() - started
            self.run.append_metrics(record)  # first: the line of every saved epoch is on disk
            self.save()
            history.append(record)
            log(f"epoch {self.epoch:3d}  train {record['train_loss']:.3f}  test {record['test_loss']:.3f}  "
                f"({record['seconds']:.1f} s)")
        return history


class ProgressBar:
    """tqdm's bar over the steps of one epoch, showing the running loss and images per second."""

    def __init__(self, total: int, description: str, batch_size: int, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=description, unit="batch", disable=not enabled, leave=False,
                        dynamic_ncols=True)
        self.batch_size, self.position, self.started = batch_size, 0, time.perf_counter()

    def update(self, step: int, loss: float) -> None:
        self.bar.update(step - self.position)
        self.position = step
        rate = step * self.batch_size / max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{rate:.0f}", refresh=False)

    def close(self) -> None:
        self.bar.close()


def check_resumable(saved: dict, requested: dict) -> None:
    """Refuse to resume with a different architecture, naming each difference."""
    differences = [f"{key}: run has {saved.get(key)!r}, asked for {requested.get(key)!r}"
                   for key in ("model", "model_config") if saved.get(key) != requested.get(key)]
    if differences:
        raise RunError("cannot resume with a different architecture: " + "; ".join(differences))
