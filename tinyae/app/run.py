"""The run folder: one training run on disk, and the one class that reads and writes it.

    RUN/config.json       what was asked: written once, when the run is created
    RUN/metrics.jsonl     one JSON line per finished epoch
    RUN/checkpoint.npz    the state after the last saved epoch: weights, optimizer state, data order
    RUN/figures/NAME.png  figures (``Run.figure_path``): training's reconstructions, samples and loss;
                          COMMAND.png drawn by each figure command (sample.png, plot.png, ...)
    RUN/eval.json         the report of ``tinyae eval``

Write order. A training process may be killed at any instant (SIGKILL, power loss); the folder must always
hold a state from which the same command continues to the result of an uninterrupted run.

1. The folder is created only once everything that can fail before training has succeeded (backend, model,
   data: ``Trainer`` builds them first), so a failed start leaves nothing. ``config.json`` is written to
   ``config.json.tmp``, fsynced, renamed, and the folder fsynced.
2. After epoch e, its metrics line is appended to ``metrics.jsonl`` in one write and fsynced; *then* the
   checkpoint of epoch e is written to a temporary file, fsynced, renamed over ``checkpoint.npz``, and the
   folder fsynced. So the metrics line of every saved epoch is on disk before (never after) its checkpoint.

Recovery, when a writer opens the folder (``Run.open(path, writable=True)``, as ``Trainer`` does):

- the checkpoint is the truth: training continues after its epoch E (0 when there is no checkpoint yet,
  e.g. a run killed in its first epoch: it starts again from the beginning);
- ``*.tmp`` files, left by writes killed before their rename, are removed;
- metrics lines of epochs after E (appended by a process killed before the checkpoint that follows them)
  are dropped, and so is a torn last line (an append cut short: no newline at its end, or not JSON). The
  file is rewritten by write-then-rename, never truncated in place, so a kill during the repair loses
  nothing and the next open repairs again.

Readers (``Run.open(path)``, ``tinyae.load_run``, ``tinyae plot``, ``tinyae eval``) change nothing on
disk: they see the same repaired view in memory, so a run can be read while it trains.

Every epoch reseeds the generators from (seed, epoch), and the checkpoint keeps the data order's generator,
so a run continued from the checkpoint of epoch E computes bit for bit what the uninterrupted run computed.
"""

from __future__ import annotations

import json
import math
import os
import signal
from collections.abc import Callable
from pathlib import Path

from . import checkpoint, validate

CONFIG, METRICS, CHECKPOINT, FIGURES = "config.json", "metrics.jsonl", "checkpoint.npz", "figures"
TRAINING_FIGURES = ("reconstructions", "samples", "loss")  # RUN/figures/NAME.png, drawn by tinyae train

# The points where a test may have the process kill itself (see ``kill_point``).
KILL_POINTS = ("config-write", "metrics-append", "metrics-appended", "checkpoint-write", "metrics-rewrite",
               "eval-write")
_kill_counts: dict[str, int] = {}


class RunError(ValueError):
    """A run folder that is missing, not a run, or incompatible with what was asked."""


def kill_point(name: str, before: Callable[[], object] | None = None) -> None:
    """A test hook: with ``TINYAE_TEST_KILL_AT=NAME:N`` in the environment, the N-th time this process
    reaches point NAME it calls ``before`` (e.g. writes half a line) and kills itself with SIGKILL."""
    target = os.environ.get("TINYAE_TEST_KILL_AT")
    if not target:
        return
    point, _, count = target.partition(":")
    _kill_counts[name] = _kill_counts.get(name, 0) + 1
    if point == name and _kill_counts[name] == int(count or 1):
        if before is not None:
            before()
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_folder(folder: Path) -> None:
    """Make the renames and new files in ``folder`` durable (where the OS lets a folder be opened)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomically(path: Path, data: bytes, point: str | None = None) -> None:
    """Write ``path`` as ``path.tmp``, fsync it, rename it over ``path`` and fsync the folder: a kill at any
    moment leaves the old file or the new one (and perhaps a stale .tmp), never a partial file. ``point``:
    the test hook's name for the moment before the rename (``kill_point``), if any."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:  # a full disk, a read-only folder: name the file meant, leave no partial copy
        temporary.unlink(missing_ok=True)
        raise OSError(error.errno, error.strerror, str(path)) from None
    if point is not None:
        kill_point(point)
    os.replace(temporary, path)
    fsync_folder(path.parent)


def holds_run(path: Path) -> bool:
    """Whether ``path`` is a folder with a config.json (a run, perhaps without a checkpoint yet)."""
    return (Path(path) / CONFIG).is_file()


def json_safe(value):
    """``value`` with every NaN or infinite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def is_free(path: Path) -> bool:
    """Whether ``Run.create`` may make a run at ``path``: nothing is there, or an empty folder, or one that
    holds only the ``*.tmp`` files of a creation that was killed."""
    path = Path(path)
    return not path.exists() or path.is_dir() and all(entry.name.endswith(".tmp") for entry in path.iterdir())


class Run:
    """A run folder: its config, its checkpoint, its metrics and figures (see the module's docstring for the
    write order and the recovery rules). ``Run.create`` makes a new one, ``Run.open`` an existing one."""

    def __init__(self, path: Path, config: dict, epoch: int, writable: bool):
        self.path, self.config, self.writable = Path(path), config, writable
        self.epoch = epoch  # the epochs the checkpoint holds
        self._saved = None  # the checkpoint once loaded (``load_checkpoint``)
        self._model = None
        self._metrics, lines_on_disk, torn = self._read_metrics()
        if writable:
            for stale in [*self.path.glob("*.tmp"), *self.path.glob(f"{FIGURES}/*.tmp")]:
                stale.unlink()
            if torn or len(self._metrics) != lines_on_disk:
                self._rewrite_metrics()
            fsync_folder(self.path)

    # Creating and opening ------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path | str, config: dict) -> Run:
        """A new run folder holding ``config``: ``path`` must not exist, or be an empty folder (stale
        ``*.tmp`` files of a creation that was killed are allowed and removed)."""
        path = Path(path)
        if holds_run(path):
            raise RunError(f"{path} already holds a run")
        if path.exists() and not path.is_dir():
            raise RunError(f"{path} is a file, not a run folder")
        if not is_free(path):
            others = sorted(entry.name for entry in path.iterdir() if not entry.name.endswith(".tmp"))
            raise RunError(f"{path} holds other files ({', '.join(others[:3])}) and no run (no config.json); "
                           "pick an empty or new folder")
        for stale in path.glob("*.tmp"):
            stale.unlink()
        path.mkdir(parents=True, exist_ok=True)
        fsync_folder(path.parent)
        text = json.dumps({"format_version": checkpoint.FORMAT_VERSION, **config}, indent=2) + "\n"
        write_atomically(path / CONFIG, text.encode(), "config-write")
        return cls(path, dict(config), 0, writable=True)

    @classmethod
    def open(cls, path: Path | str, writable: bool = False) -> Run:
        """The run in folder ``path``. ``writable``: to train it on, repairing the folder first; otherwise
        nothing on disk is changed."""
        path = Path(path)
        config = cls._read_config(path)
        epoch = checkpoint.load_meta(path / CHECKPOINT)["epoch"] if (path / CHECKPOINT).exists() else 0
        return cls(path, config, epoch, writable)

    @staticmethod
    def _read_config(path: Path) -> dict:
        """The run's config.json, checked key by key (``validate.check_config``): a RunError says what is
        wrong with the folder or the file."""
        if not path.is_dir():
            raise RunError(f"no run folder at {path}")
        config_path = path / CONFIG
        if not config_path.is_file():
            raise RunError(f"{path} is not a tinyae run (it has no config.json)")
        try:
            config = json.loads(config_path.read_bytes().decode())
        except (ValueError, RecursionError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise RunError(f"{config_path} is not valid JSON: {type(error).__name__}: {str(error)[:100]}") from None
        if not isinstance(config, dict):
            raise RunError(f"{config_path} must hold a JSON object, got {type(config).__name__}")
        if config.get("format_version") != checkpoint.FORMAT_VERSION:
            raise RunError(f"{path} was written by an incompatible tinyae (format "
                           f"{config.get('format_version')!r}, expected {checkpoint.FORMAT_VERSION})")
        config = {**validate.LATER_KEYS, **config}  # a run written before a key existed
        try:
            validate.check_config(config, extra=("format_version",))
        except validate.ConfigError as error:
            raise RunError(f"{config_path} is damaged: {error}") from None
        config.pop("format_version")
        return config

    def differences(self, config: dict, ignore: tuple[str, ...] = ("epochs",)) -> list[str]:
        """What ``config`` changes from this run's, one "key: run has X, asked for Y" each."""
        keys = [key for key in {**self.config, **config} if key not in ignore]
        return [f"{key}: run has {self.config.get(key)!r}, asked for {config.get(key)!r}"
                for key in keys if self.config.get(key) != config.get(key)]

    # The state ----------------------------------------------------------------------------------------
    def load_checkpoint(self, expected: dict) -> dict:
        """The checkpoint (``tinyae.app.checkpoint.load``'s dict, host arrays), read once and checked against
        ``expected``, the model's ``checkpoint.expected_arrays``: a damaged or hostile file is refused
        before anything large is read."""
        if self.epoch == 0:
            raise RunError(f"{self.path} has no checkpoint yet (no epoch has finished)")
        if self._saved is None:
            self._saved = checkpoint.load(self.path / CHECKPOINT, expected)
        return self._saved

    @property
    def metrics(self) -> list[dict]:
        """The metrics of epochs 1 to ``epoch``, one dict per epoch (a copy)."""
        return [dict(record) for record in self._metrics]

    def append_metrics(self, record: dict) -> None:
        """Append the metrics line of epoch ``record["epoch"]`` and fsync it: call before saving its
        checkpoint."""
        self._check_writable()
        line = (json.dumps(record) + "\n").encode()
        path = self.path / METRICS
        created = not path.exists()
        with open(path, "ab") as file:
            kill_point("metrics-append", lambda: (file.write(line[:len(line) // 2]), file.flush()))
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
        if created:
            fsync_folder(self.path)
        kill_point("metrics-appended")
        self._metrics.append(dict(record))

    def save_checkpoint(self, config: dict, model_state: dict, training_state: dict, epoch: int) -> None:
        """Replace the checkpoint by the state after ``epoch`` (atomically; the folder fsynced after)."""
        self._check_writable()
        path = self.path / CHECKPOINT
        checkpoint.save(path, config, model_state, training_state, epoch,
                        before_replace=lambda: kill_point("checkpoint-write"))
        fsync_folder(self.path)
        self.epoch, self._saved, self._model = epoch, None, None  # read back from the file when asked for

    def _check_writable(self) -> None:
        if not self.writable:
            raise RunError(f"{self.path} was opened read-only; Run.open(path, writable=True) to train it")

    def _read_metrics(self) -> tuple[list[dict], int, bool]:
        """(the records of epochs up to ``epoch``, the number of whole lines, whether the last is torn)."""
        path = self.path / METRICS
        lines = path.read_bytes().split(b"\n") if path.exists() else [b""]  # last: b"" after a final newline
        records, torn = [], lines[-1] != b""
        for number, line in enumerate(lines[:-1], 1):
            try:
                record = json.loads(line.decode())
            except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
                if number < len(lines) - 1 or torn:
                    what = "is not UTF-8 text" if isinstance(error, UnicodeDecodeError) else "is not JSON"
                    raise RunError(f"{path}, line {number}, {what}: {line[:60]!r}") from None
                torn = True  # the last line is cut short although it ends with a newline (not JSON)
                continue
            if not isinstance(record, dict) or type(record.get("epoch")) is not int or record["epoch"] < 1:
                raise RunError(f"{path}, line {number}: expected a JSON object with an integer epoch >= 1, "
                               f"got {line[:60]!r}")
            records.append(record)
        return [record for record in records if record["epoch"] <= self.epoch], len(lines) - 1, torn

    def _rewrite_metrics(self) -> None:
        """Keep only the records of epochs up to the checkpoint's, by write-then-rename."""
        data = "".join(json.dumps(record) + "\n" for record in self._metrics).encode()
        write_atomically(self.path / METRICS, data, "metrics-rewrite")

    # The model, the test set and evaluation --------------------------------------------------------------
    @property
    def model(self):
        """The model with the checkpoint's weights, in eval mode, on the run's backend (which becomes
        tinyae's current backend)."""
        if self.epoch == 0:
            raise RunError(f"{self.path} has no checkpoint yet (no epoch has finished)")
        if self._model is None:
            from .. import backend
            from .train import build_model  # train imports this module

            backend.set_backend(self.config["backend"])
            model = build_model(self.config)
            model.load_state_dict(self.load_checkpoint(checkpoint.expected_arrays(model.state_dict()))["model"])
            self._model = model.eval()
        return self._model

    def test_set(self, limit: int | None = None, batch_size: int = 500):
        """The first ``limit`` test images (all by default) in the run's layout, binarized as in training
        (the same draw): a ``tinyae.data.Batches`` on the run's backend, whose batches carry the labels
        for a conditional model."""
        from ..data import Batches
        from ..models import MODELS, image_layout
        from .train import load_split  # train imports this module

        images, labels = load_split("test", self.config)
        return Batches(images, labels, batch_size=batch_size, layout=image_layout(self.config["model"]),
                       limit=limit, binarize=self.config["binarize"], seed=self.config["seed"] + 1,
                       backend_name=self.config["backend"], with_labels=MODELS[self.config["model"]].is_conditional)

    def test_images(self, count: int):
        """The first ``count`` test images as one Tensor (fewer if the test set is smaller)."""
        from .train import model_inputs

        return model_inputs(next(iter(self.test_set(count, batch_size=count))))[0]

    def test_labels(self, count: int):
        """The digits of the first ``count`` test images, a host array (N,)."""
        return self.test_set(count).labels

    def evaluate(self, k: int = 1000, limit: int | None = None,
                 on_batch: Callable[[int, int], None] | None = None) -> dict:
        """The report of ``tinyae eval``: for a VAE the test negative ELBO, its parts, the IWAE estimate of
        −log p(x) with ``k`` samples, KL per dimension and active units; for the other autoencoders the
        reconstruction loss; for a conditional VAE also the accuracy of its generated digits
        (``generated_digits``). ``on_batch(images_done, images_total)`` follows the progress."""
        import time

        from . import evaluate

        model, batches = self.model, self.test_set(limit)
        report = {"run": str(self.path), "model": self.config["model"], "epoch": self.epoch,
                  "dataset": self.config["dataset"], "test_images": batches.num_images,
                  "data": "binarized (dynamic binarization, the test set drawn once)"
                  if self.config["binarize"] else "continuous (grey levels in [0, 1])"}
        started = time.perf_counter()
        if model.is_conditional:
            report["conditional"] = ("the label y given: the ELBO and the IWAE estimate are those of "
                                     "log p(x|y)")
        if model.is_variational:
            report["likelihood"] = model.config["likelihood"]
            progress = None if on_batch is None else (lambda done: on_batch(done, batches.num_images))
            report.update(evaluate.evaluate_vae(model, batches, k, on_batch=progress, seed=self.config["seed"]))
        else:
            report["note"] = (f"a {self.config['model']} has no likelihood: only its reconstruction loss is "
                              "reported (no ELBO, no importance-weighted log-likelihood)")
            report.update(evaluate.evaluate_autoencoder(model, batches))
        if model.is_conditional:
            report.update(self.generated_digits())
        report["seconds"] = time.perf_counter() - started
        return report

    def generated_digits(self, n: int = 1000) -> dict:
        """How often a conditional model draws the digit asked for: n/10 samples of each digit judged by
        an MLP classifier trained on the run's training set, whose own test accuracy is reported beside
        (``tinyae.app.classifier.generated_digit_report``; seeded by the run's seed)."""
        from . import classifier
        from .train import load_split  # train imports this module

        if not self.model.is_conditional:
            raise RunError(f"{self.path} holds a {self.config['model']} run, which draws no digit on demand; "
                           "generated-digit accuracy needs a conditional VAE (--model cvae or conv-cvae)")
        return classifier.generated_digit_report(self.model, load_split("train", self.config),
                                                 load_split("test", self.config), n, seed=self.config["seed"])

    def write_eval(self, report: dict) -> Path:
        """Save an ``evaluate`` report as RUN/eval.json (atomically, strict JSON: null where a number is
        undefined, e.g. the KL of a collapsed run); returns its path."""
        path = self.path / "eval.json"
        text = json.dumps(json_safe(report), indent=2, allow_nan=False) + "\n"
        write_atomically(path, text.encode(), "eval-write")
        return path

    # Figures ------------------------------------------------------------------------------------------
    # Each figure method writes to ``path`` if given, else to RUN/figures/COMMAND.png, COMMAND being the
    # tinyae command that draws it; training's own figures (TRAINING_FIGURES) have other names, so
    # drawing a figure never replaces them unless ``path`` asks for it.
    def figure_path(self, name: str) -> Path:
        """Where figure ``name`` goes: RUN/figures/NAME.png."""
        return self.path / FIGURES / f"{name}.png"

    def loss_curves(self, path: Path | str | None = None) -> Path:
        """Train and test loss per epoch, and each part of the loss, from the metrics (plot.png)."""
        from . import figures

        if not self._metrics:
            raise RunError(f"{self.path} has no metrics yet (no epoch has finished)")
        return figures.loss_curves(self.metrics, path or self.figure_path("plot"))

    def samples(self, n: int = 64, path: Path | str | None = None, digit: int | None = None,
                grid: bool = False) -> Path:
        """n images decoded from z ~ N(0, I), VAEs only (sample.png). A conditional VAE draws the digit
        ``digit`` (default: 0, 1, …, 9 in turn), or with ``grid`` one row per digit, the same n codes in
        each (n columns)."""
        from . import figures

        model = self.model
        if not model.is_variational:
            raise RunError(f"{self.path} holds a {self.config['model']} run, which has no prior to sample from; "
                           "sampling needs a VAE")
        if (digit is not None or grid) and not model.is_conditional:
            option = "--grid" if grid else "--digit"
            raise RunError(f"{option} needs a conditional VAE (train with --model cvae or conv-cvae); "
                           f"{self.path} holds a {self.config['model']} run, which draws no digit on demand")
        if digit is not None and not 0 <= digit < model.config["classes"]:
            raise RunError(f"--digit {digit} is not a class of {self.path} (0 to {model.config['classes'] - 1})")
        path = path or self.figure_path("sample")
        return figures.class_grid(model, path, n) if grid else figures.samples(model, n, path, digit=digit)

    def reconstructions(self, count: int = 32, path: Path | str | None = None) -> Path:
        """The first ``count`` test images and their reconstructions (reconstruct.png)."""
        from . import figures

        images, labels = self.test_images(count), self.test_labels(count)
        return figures.reconstructions(self.model, images, path or self.figure_path("reconstruct"), labels=labels)

    def interpolations(self, pairs: int = 8, steps: int = 10, path: Path | str | None = None) -> Path:
        """Straight lines in latent space between pairs of test images, one pair a row (interpolate.png)."""
        from . import figures

        images, labels = self.test_images(2 * pairs), self.test_labels(2 * pairs)
        if len(images) < 2 * pairs:
            raise RunError(f"--pairs {pairs} needs {2 * pairs} test images; the test set has {len(images)}")
        path = path or self.figure_path("interpolate")
        return figures.interpolations(self.model, images[0::2], images[1::2], path, steps, labels[0::2],
                                      labels[1::2])

    def traversal(self, dims: int | None = None, index: int = 0, zero: bool = False,
                  path: Path | str | None = None) -> Path:
        """One latent dimension at a time from −3σ to 3σ, around test image ``index``'s code or (``zero``)
        0; an AE's steps are scaled by the spread of its codes over the first 1000 test images, and its
        ``zero`` center is their mean (traverse.png). A conditional VAE draws test image ``index``'s digit."""
        import numpy as np

        from . import figures
        from ..autograd import no_grad
        from .evaluate import latent_means

        model = self.model
        latent_dim = model.config["latent_dim"]
        spread = None
        if not model.is_variational:
            codes = self.test_codes(1000)[0]
            spread = codes.mean(axis=0), codes.std(axis=0)
        images, labels = self.test_images(max(index, 0) + 1), self.test_labels(max(index, 0) + 1)
        if not 0 <= index < len(images):
            raise RunError(f"--index {index} is not a test image (0 to {len(images) - 1})")
        if zero:
            center, center_name = ((np.zeros(latent_dim), "0") if spread is None
                                   else (spread[0], "the mean code"))
        else:
            with no_grad():
                center = latent_means(model, images[index:index + 1], labels[index:index + 1]).numpy()[0]
            center_name = f"test digit {index}'s code"
        digit = int(labels[index]) if model.is_conditional else None
        return figures.traversal(model, center, min(dims or 10, latent_dim), path or self.figure_path("traverse"),
                                 center_name, spread, digit=digit)

    def manifold(self, size: int = 20, path: Path | str | None = None, digit: int | None = None) -> Path:
        """The decoded grid over a 2-D latent space, for a run trained with --latent-dim 2 (manifold.png);
        a conditional VAE's as the digit ``digit`` (default 0)."""
        from . import figures

        model = self.model
        latent_dim = model.config["latent_dim"]
        if latent_dim != 2:
            raise RunError(f"the manifold needs a 2-D latent space; {self.path} has latent_dim {latent_dim} "
                           "(train with --latent-dim 2, or see tinyae embed)")
        if digit is not None and not model.is_conditional:
            raise RunError(f"--digit needs a conditional VAE; {self.path} holds a {self.config['model']} run")
        if model.is_conditional:
            digit = 0 if digit is None else digit
            if not 0 <= digit < model.config["classes"]:
                raise RunError(f"--digit {digit} is not a class of {self.path} (0 to {model.config['classes'] - 1})")
        return figures.manifold(model, path or self.figure_path("manifold"), size, digit)

    def embedding(self, limit: int | None = None, path: Path | str | None = None) -> Path:
        """The test set's latent means colored by digit, PCA above 2-D (embed.png)."""
        from . import figures
        from ..autograd import no_grad
        from ..functions import concatenate
        from .evaluate import latent_means

        from .train import model_inputs

        batches = self.test_set(limit)
        with no_grad():
            codes = concatenate([latent_means(self.model, *model_inputs(batch)) for batch in batches]).numpy()
        what = "posterior means μ(x)" if self.model.is_variational else "codes f(x)"
        return figures.embedding(codes, batches.labels, path or self.figure_path("embed"), f"test-set {what}")

    def test_codes(self, limit: int | None = None):
        """(codes (N, D), images (N, ...), labels (N,)) of the first ``limit`` test images, on the host:
        μ(x) for a VAE, f_θ(x) for an AE, μ(x, y) with the image's label for a conditional model."""
        import numpy as np

        from ..autograd import no_grad
        from .evaluate import latent_means
        from .train import model_inputs

        model, batches = self.model, self.test_set(limit)
        codes, images = [], []
        with no_grad():
            for batch in batches:
                x, *condition = model_inputs(batch)
                codes.append(latent_means(model, x, *condition).numpy())
                images.append(x.numpy())
        return np.concatenate(codes), np.concatenate(images), batches.labels

    def attribute_vector(self, attribute: str = "thickness", limit: int | None = 2000, test_codes=None):
        """The latent direction of ``attribute`` (a name of ``figures.ATTRIBUTES``: thickness, slant),
        measured on the first ``limit`` test images (``figures.attribute_vector``): a host array (D,).
        ``test_codes``: what ``self.test_codes(limit)`` returns, when the caller has it already."""
        from . import figures

        if attribute not in figures.ATTRIBUTES:
            raise RunError(f"unknown attribute {attribute!r}; expected one of "
                           f"{', '.join(figures.ATTRIBUTES)}")
        codes, images, labels = test_codes or self.test_codes(limit)
        try:
            return figures.attribute_vector(codes, figures.ATTRIBUTES[attribute](images), labels)
        except ValueError as error:
            raise RunError(f"{error} (in the first {len(labels)} test images; use more)") from None

    def arithmetic(self, attribute: str = "thickness", rows: int = 8, limit: int | None = 2000,
                   path: Path | str | None = None) -> Path:
        """Latent arithmetic (arithmetic.png): ``rows`` test digits of different classes (the first of each
        digit, then the second, ...), their codes plus α·v for α from −2 to 2, v the ``attribute`` vector
        of the first ``limit`` test images (``attribute_vector``). A conditional model keeps each row's
        label: its digit stays while its style moves."""
        from . import figures
        from ..tensor import Tensor

        test_codes = self.test_codes(limit)
        vector = self.attribute_vector(attribute, limit, test_codes)
        _, images, labels = test_codes
        if rows > len(images):
            raise RunError(f"--rows {rows} needs {rows} test images; --limit keeps {len(images)}")
        chosen = figures.one_of_each_class(labels, rows)
        model = self.model
        return figures.arithmetic(model, Tensor(images[chosen]).to(self.config["backend"]), vector,
                                  path or self.figure_path("arithmetic"), attribute,
                                  labels=labels[chosen] if model.is_conditional else None)

    def explorer(self, path: Path | str | None = None, count: int = 100) -> Path:
        """The latent-space explorer, one self-contained HTML page (explore.html, beside the run's files):
        the decoder runs in the browser, with a slider per latent dimension, a 2-D pad, a random draw and
        the codes of the first ``count`` test images (and for a conditional VAE, buttons for the digit). A
        VAE's sliders span the prior's ±3σ; an AE's, the mean ± 3σ of its codes over the first 1000 test
        images (σ taken as 1 where the codes never vary)."""
        import numpy as np

        from . import explore

        model, latent_dim = self.model, self.model.config["latent_dim"]
        codes, images, labels = self.test_codes(count)
        if model.is_variational:
            center, scale = np.zeros(latent_dim), np.ones(latent_dim)
            ranges = ("The sliders span ±3, three standard deviations of the prior N(0, I); a random draw is "
                      "z ~ N(0, I).")
        else:
            test_codes = self.test_codes(1000)[0]
            center, scale = test_codes.mean(axis=0), test_codes.std(axis=0)
            scale[scale == 0] = 1
            ranges = (f"The sliders span the mean ± 3σ of each dimension over the codes of the first "
                      f"{len(test_codes)} test images; a random draw takes each dimension from the normal "
                      "distribution of that mean and σ.")
        bounds = (0, 1) if model.config.get("penalty") == "kl" else None  # a sparse AE's sigmoid code
        if bounds:
            ranges += " The code is a sigmoid's: sliders and draws stay within [0, 1]."
        decoder = "g(z, y), y the digit chosen by the buttons," if model.is_conditional else "g(z)"
        about = (f"The decoder {decoder} of a {self.config['model']} (latent_dim {latent_dim}, epoch "
                 f"{self.epoch}) runs in this page. {ranges} The image is p = sigmoid(g), dark where p is 1: "
                 "grey level 255·(1 − p).")
        path = path or self.path / "explore.html"
        return explore.write_explorer(model, path, codes, labels, images, center, scale,
                                      f"tinyae explorer: {self.path.name}", about, bounds)

    def final_figures(self) -> list[Path]:
        """The figures ``tinyae train`` draws at the end, TRAINING_FIGURES: reconstructions.png, samples.png
        (VAEs; a conditional VAE's is its class grid, ten codes drawn as every digit) and loss.png."""
        paths = [self.reconstructions(path=self.figure_path("reconstructions"))]
        if self.model.is_variational:
            conditional = self.model.is_conditional
            paths.append(self.samples(10 if conditional else 64, self.figure_path("samples"), grid=conditional))
        return [*paths, self.loss_curves(self.figure_path("loss"))]

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, model={self.config['model']!r}, epoch={self.epoch})"


def load_run(path: Path | str) -> Run:
    """The run in folder ``path``, read-only: ``.config``, ``.model`` (trained weights, eval mode),
    ``.metrics``, ``.epoch``, ``.evaluate(k=...)`` and the figures of the ``tinyae`` command."""
    return Run.open(path)
