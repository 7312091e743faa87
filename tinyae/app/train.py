"""Training: the loop behind ``tinyae train``, with metrics, atomic checkpoints, resume and a NaN guard.

A run folder holds ``config.json`` (everything needed to rebuild the model and continue), ``metrics.jsonl``
(one line per epoch), ``checkpoint.npz`` (the state after the last finished epoch) and ``figures/``.

Reproducibility: at the start of epoch e every tinyae generator is reseeded from (seed, e), and the data
order comes from the batch generator whose state the checkpoint keeps. So a run resumed from the
checkpoint of epoch e computes exactly what the uninterrupted run computed.
"""

from __future__ import annotations

import json
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
from .validate import ConfigError, check_config
from ..models import MODELS, image_layout


class RunError(ValueError):
    """A run folder that is missing, not a run, or incompatible with what was asked."""


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


def default_config() -> dict:
    """The configuration of ``tinyae train`` with no arguments: the VAE of PyTorch's example."""
    return {"model": "vae", "model_config": {}, "dataset": "mnist", "data_dir": None, "binarize": False,
            "epochs": 10, "batch_size": 128, "lr": 1e-3, "optimizer": "adam", "seed": 0, "limit": None,
            "test_limit": None, "kl_warmup": 0, "backend": "numpy"}


def build_model(config: dict):
    """The model a config describes, with freshly initialized weights (seeded by the config's seed)."""
    tinyae_random.manual_seed(config["seed"])
    return MODELS[config["model"]](**config["model_config"])


def build_optimizer(config: dict, model):
    kinds = {"adam": optim.Adam, "adamw": optim.AdamW, "sgd": optim.SGD}
    if config["optimizer"] == "sgd":
        return optim.SGD(model.parameters(), lr=config["lr"], momentum=0.9)
    return kinds[config["optimizer"]](model.parameters(), lr=config["lr"])


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s generators, derived from the run's seed."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def load_data(config: dict) -> tuple[Batches, Batches]:
    """(train batches, shuffled and optionally binarized; test batches, in order) on the run's backend."""
    layout = image_layout(config["model"])
    train_images, train_labels = load_split("train", config)
    test_images, test_labels = load_split("test", config)
    train = Batches(train_images, train_labels, batch_size=config["batch_size"], shuffle=True,
                    binarize=config["binarize"], layout=layout, limit=config["limit"], seed=config["seed"])
    test = Batches(test_images, test_labels, batch_size=500, layout=layout, limit=config["test_limit"],
                   binarize=config["binarize"], seed=config["seed"] + 1)
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


def loss_values(model, total, parts) -> dict:
    """The backend arrays written to the metrics: "loss" and each part. "loss" is the negative ELBO
    (recon + KL, whatever β and the KL warm-up weight) for VAEs, the training objective for the others."""
    values = {"loss": total.data, **{name: part.data for name, part in parts.items()}}
    if model.is_variational:
        values["loss"] = values["recon"] + values["kl"]
    return values


def evaluate(model, batches: Batches) -> dict[str, float]:
    """The loss and its parts, averaged per image over all batches (eval mode, no graph); summed on the
    device and read once at the end (on a GPU each read waits for the queued batches)."""
    model.eval()
    totals: dict[str, object] = {}
    with no_grad():
        for x in batches:
            total, parts = model.loss(x)
            for name, value in loss_values(model, total, parts).items():
                totals[name] = totals.get(name, 0) + value * x.shape[0]
    model.train()
    backend.check_device_asserts()
    return {name: float(value) / batches.num_images for name, value in totals.items()}


class Trainer:
    """Trains the model of ``config`` in ``run_dir``, one epoch at a time, checkpointing after each."""

    def __init__(self, config: dict, run_dir: Path, progress: bool = True):
        self.config, self.run_dir, self.progress = config, Path(run_dir), progress
        self.run_dir.mkdir(parents=True, exist_ok=True)
        backend.set_backend(config["backend"])
        self.model = build_model(config)
        self.optimizer = build_optimizer(config, self.model)
        self.train_batches, self.test_batches = load_data(config)
        self.test_state = self.test_batches.state()  # every evaluation sees the same (binarized) test set
        self.epoch = 0
        # host reads of the loss: rarely on a device (strict, CuPy's stand-in, reads as CuPy does)
        self.sync_every = 1 if config["backend"] == "numpy" else 25

    # Saving and resuming ------------------------------------------------------------------------------
    def save(self) -> None:
        state = {"optimizer": self.optimizer.state_dict(), "data": self.train_batches.state()}
        checkpoint.save(self.run_dir / "checkpoint.npz", self.config, self.model.state_dict(), state, self.epoch)

    def restore(self) -> None:
        path = self.run_dir / "checkpoint.npz"
        saved = checkpoint.load(path, checkpoint.expected_arrays(self.model.state_dict()))
        self.model.load_state_dict(saved["model"])
        try:
            self.optimizer.load_state_dict(saved["optimizer"]["optimizer"])
            self.train_batches.set_state(saved["optimizer"]["data"])
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            raise checkpoint.CheckpointError(f"{path} has a damaged optimizer or data state "
                                             f"({type(error).__name__}: {error})") from None
        self.epoch = saved["epoch"]
        _truncate_metrics(self.run_dir / "metrics.jsonl", self.epoch)

    # The loop -----------------------------------------------------------------------------------------
    def kl_weight(self, epoch: int, step: int) -> float:
        """Linear KL warm-up: the weight of β·KL grows from 0 to 1 over ``kl_warmup`` epochs."""
        warmup = self.config["kl_warmup"]
        if not warmup:
            return 1.0
        return min(1.0, (epoch + step / len(self.train_batches)) / warmup)

    def train_epoch(self, on_step: Callable[[int, float], None] | None = None) -> dict[str, float]:
        """One pass over the training set; returns the per-image averages of the loss and its parts."""
        epoch = self.epoch
        tinyae_random.manual_seed(epoch_seed(self.config["seed"], epoch))
        model, optimizer = self.model, self.optimizer
        model.train()
        sums: dict[str, object] = {}
        seen = 0
        unread: list = []  # the losses of the steps since the last host read (device arrays on the GPU)
        for step, x in enumerate(self.train_batches):
            if model.is_variational:
                model.kl_weight = self.kl_weight(epoch, step)
            total, parts = model.loss(x)
            optimizer.zero_grad()
            total.backward()
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
                    raise NonFiniteLossError(
                        f"the training loss became {bad} in epoch {epoch + 1}, at step "
                        f"{step + 2 - len(unread) + offset}; stopped, and kept the checkpoint of epoch {epoch} "
                        f"in {self.run_dir}"
                    )
                unread.clear()
                if on_step is not None:
                    on_step(step + 1, running)
        return {name: float(value) / seen for name, value in sums.items()}

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
            test = evaluate(self.model, self.test_batches)
            self.epoch += 1
            record = {"epoch": self.epoch, "train_loss": train.pop("loss"), "test_loss": test.pop("loss")}
            record.update({f"train_{k}": v for k, v in train.items()})
            record.update({f"test_{k}": v for k, v in test.items()})
            record["seconds"] = time.perf_counter() - started
            self.save()
            with open(self.run_dir / "metrics.jsonl", "a") as file:
                file.write(json.dumps(record) + "\n")
            history.append(record)
            log(f"epoch {self.epoch:3d}  train {record['train_loss']:.3f}  test {record['test_loss']:.3f}  "
                f"({record['seconds']:.1f} s)")
        return history


def _truncate_metrics(path: Path, epochs: int) -> None:
    """Drop metric lines of epochs after the checkpoint (a run killed after writing them)."""
    if not path.exists():
        return
    records = read_metrics_lines(path)
    kept = [line for line, record in records if record["epoch"] <= epochs]
    path.write_text("".join(line + "\n" for line in kept))


def read_metrics_lines(path: Path) -> list[tuple[str, dict]]:
    """(line, record) of each line of a metrics.jsonl; a damaged line is a RunError naming the file and line
    (each record is a JSON object with an integer epoch >= 1)."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise RunError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as error:
            raise RunError(f"{path}, line {number}: not valid JSON ({type(error).__name__}: "
                           f"{str(error)[:80]})") from None
        if not isinstance(record, dict) or type(record.get("epoch")) is not int or record["epoch"] < 1:
            raise RunError(f"{path}, line {number}: expected a JSON object with an integer epoch >= 1, "
                           f"got {line[:80]!r}")
        records.append((line, record))
    return records


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


def read_config(run_dir: Path) -> dict:
    """The config of a run folder, or a RunError saying what is wrong with the folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"no run folder at {run_dir}")
    path = run_dir / "config.json"
    if not path.is_file():
        raise RunError(f"{run_dir} is not a tinyae run (it has no config.json)")
    try:
        config = json.loads(path.read_bytes().decode())
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise RunError(f"{path} is not valid JSON: {type(error).__name__}: {str(error)[:100]}") from None
    if not isinstance(config, dict):
        raise RunError(f"{path} must hold a JSON object, got {type(config).__name__}")
    if config.get("format_version") != checkpoint.FORMAT_VERSION:
        raise RunError(f"{run_dir} was written by an incompatible tinyae (format "
                       f"{config.get('format_version')!r}, expected {checkpoint.FORMAT_VERSION})")
    try:
        check_config(config, extra=("format_version",))
    except ConfigError as error:
        raise RunError(f"{path} is damaged: {error}") from None
    return config


def write_config(run_dir: Path, config: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"format_version": checkpoint.FORMAT_VERSION, **config}, indent=2)
    (run_dir / "config.json").write_text(text + "\n")


def check_resumable(saved: dict, requested: dict) -> None:
    """Refuse to resume with a different architecture, naming each difference."""
    differences = [f"{key}: run has {saved.get(key)!r}, asked for {requested.get(key)!r}"
                   for key in ("model", "model_config") if saved.get(key) != requested.get(key)]
    if differences:
        raise RunError("cannot resume with a different architecture: " + "; ".join(differences))
