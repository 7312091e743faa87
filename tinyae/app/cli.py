"""The ``tinyae`` command: train a model on MNIST, then evaluate it and draw what it learned.

    tinyae train                          # the default VAE, 10 epochs, into runs/vae
    tinyae train --model conv-vae --epochs 5 --limit 10000
    tinyae train --resume runs/vae --epochs 20
    tinyae eval runs/vae -k 1000          # test −ELBO, IWAE log-likelihood, KL per dimension, active units
    tinyae sample runs/vae -n 64          # and reconstruct, interpolate, traverse, manifold, embed, plot
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import backend
from . import checkpoint, evaluate, figures
from .. import random as tinyae_random
from ..autograd import no_grad
from . import validate
from .checkpoint import CheckpointError
from .validate import MAX_WIDTH, ConfigError
from ..data import Batches, DataError, DataNotFoundError
from ..functions import concatenate
from ..models import MODELS, Autoencoder, image_layout
from ..nn.module import StateDictError
from ..testing import catalog as gradcheck_catalog
from .train import (
    NonFiniteLossError,
    RunError,
    Trainer,
    build_model,
    load_split,
    read_metrics_lines,
    check_resumable,
    default_config,
    read_config,
    write_config,
)

# --option → (model_config key, the models it applies to)
MODEL_OPTIONS = {
    "hidden": ("hidden", ("ae", "sparse-ae", "denoising-ae", "vae")),
    "latent_dim": ("latent_dim", tuple(MODELS)),
    "beta": ("beta", ("vae", "conv-vae")),
    "likelihood": ("likelihood", ("vae", "conv-vae")),
    "decoder": ("decoder", ("conv-ae", "conv-vae")),
    "sparsity": ("sparsity", ("sparse-ae",)),
    "penalty": ("penalty", ("sparse-ae",)),
    "noise": ("noise_level", ("denoising-ae",)),
    "noise_type": ("noise", ("denoising-ae",)),
}
MAX_FIGURE_COUNT = 1000  # -n, --pairs, --steps, --dims, --size
TRAINING_OPTIONS = ("epochs", "batch_size", "lr", "optimizer", "backend", "seed", "binarize", "dataset",
                    "data_dir", "limit", "test_limit", "kl_warmup")


WIDTH = validate.count(MAX_WIDTH)
COUNT = validate.count(10**9)
FIGURE_COUNT = validate.count(MAX_FIGURE_COUNT)
NON_NEGATIVE = validate.non_negative_float()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyae", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model on MNIST and write a run folder")
    model = train.add_argument_group("model")
    model.add_argument("--model", choices=list(MODELS), help="which autoencoder (default: vae)")
    model.add_argument("--latent-dim", type=WIDTH, help=f"size of the code z (default 20; sparse-ae 64; at most {MAX_WIDTH})")
    model.add_argument("--hidden", type=WIDTH, help=f"width of the MLP hidden layer (default 400; at most {MAX_WIDTH})")
    model.add_argument("--beta", type=NON_NEGATIVE, help="weight of the KL term: β-VAE (default 1)")
    model.add_argument("--likelihood", choices=["bernoulli", "gaussian"], help="p(x|z) of a VAE (default bernoulli)")
    model.add_argument("--decoder", choices=["transpose", "upsample"], help="conv decoder kind (default transpose)")
    model.add_argument("--sparsity", type=NON_NEGATIVE, help="weight λ of the sparsity penalty (default 1)")
    model.add_argument("--penalty", choices=["l1", "kl"], help="sparsity penalty (default l1)")
    model.add_argument("--noise", type=NON_NEGATIVE, help="denoising: σ >= 0, or p in [0, 1) for --noise-type mask (default 0.3)")
    model.add_argument("--noise-type", choices=["gaussian", "mask"], help="denoising corruption (default gaussian)")
    run = train.add_argument_group("training")
    run.add_argument("--epochs", type=validate.count(validate.MAX_EPOCHS), help="train until this many epochs are done (default 10)")
    run.add_argument("--batch-size", type=validate.count(validate.MAX_BATCH), help="images per step (default 128)")
    run.add_argument("--lr", type=validate.positive_float(), help="learning rate (default 1e-3)")
    run.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], help="(default adam; sgd uses momentum 0.9)")
    run.add_argument("--kl-warmup", type=NON_NEGATIVE, help="epochs over which the KL weight rises 0 → 1")
    run.add_argument("--backend", choices=["numpy", "cupy"], help="numpy (CPU) or cupy (GPU) (default numpy)")
    run.add_argument("--seed", type=validate.seed(), help="seed of every random draw (default 0)")
    run.add_argument("--binarize", action="store_true", default=None, help="dynamic binarization of the inputs")
    run.add_argument("--dataset", choices=["mnist", "fashion-mnist"], help="(default mnist)")
    run.add_argument("--data-dir", type=validate.existing_folder, help="folder with the IDX files, looked at first")
    run.add_argument("--limit", type=COUNT, help="use only the first N training images")
    run.add_argument("--test-limit", type=COUNT, help="use only the first N test images")
    run.add_argument("--out", type=Path, help="run folder to create (default runs/MODEL, numbered if taken)")
    run.add_argument("--resume", type=Path, metavar="RUN", help="continue RUN in place up to --epochs")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    def run_command(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("run", type=Path, metavar="RUN", help="a run folder written by tinyae train")
        return command

    evaluation = run_command("eval", "test-set negative ELBO, IWAE log-likelihood, KL per dimension, "
                                     "active units")
    evaluation.add_argument("-k", type=validate.count(validate.MAX_SAMPLES), default=1000,
                            help="importance samples per image for log p(x) (default 1000)")
    evaluation.add_argument("--limit", type=COUNT, help="only the first N test images (default: all)")
    evaluation.add_argument("--quiet", action="store_true", help="no progress bar")
    run_command("sample", "decode n draws from p(z)").add_argument(
        "-n", type=FIGURE_COUNT, default=64, help="number of samples (default 64)")
    run_command("reconstruct", "test digits and their reconstructions")
    interpolate = run_command("interpolate", "decode straight lines in latent space between test digits")
    interpolate.add_argument("--pairs", type=FIGURE_COUNT, default=8, help="pairs of digits, one a row (default 8)")
    interpolate.add_argument("--steps", type=FIGURE_COUNT, default=10, help="points per line (default 10)")
    traverse = run_command("traverse", "vary one latent dimension at a time from -3σ to 3σ")
    traverse.add_argument("--dims", type=FIGURE_COUNT, help="dimensions, one a row (default 10, or all if fewer)")
    traverse.add_argument("--index", type=validate.index(), default=0,
                          help="test digit whose code the others keep (default 0)")
    traverse.add_argument("--zero", action="store_true",
                          help="keep the other dimensions at 0 instead (an AE's: at its mean test code)")
    manifold = run_command("manifold", "the decoded grid over a 2-D latent space (for --latent-dim 2)")
    manifold.add_argument("--size", type=FIGURE_COUNT, default=20, help="grid points per side (default 20)")
    embed = run_command("embed", "the test set's latent means, colored by digit (PCA above 2-D)")
    embed.add_argument("--limit", type=COUNT, help="only the first N test images (default: all)")
    run_command("plot", "loss curves from metrics.jsonl")
    gradcheck = commands.add_parser("gradcheck", help=gradcheck_catalog.DESCRIPTION,
                                    description=gradcheck_catalog.DESCRIPTION)
    gradcheck_catalog.add_arguments(gradcheck)
    return parser


def model_config_from(args: argparse.Namespace, model: str) -> dict:
    """The model options given on the command line; an option that the model does not have is an error."""
    config = {}
    for option, (key, models) in MODEL_OPTIONS.items():
        value = getattr(args, option)
        if value is None:
            continue
        if model not in models:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} does not apply to --model {model} (it applies to {', '.join(models)})")
        config[key] = value
    return config


def check_new_config(config: dict) -> None:
    """The options together (e.g. a mask noise level is a probability): a usage error if they don't fit."""
    try:
        validate.check_config(config)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def next_free(path: Path) -> Path:
    if not path.exists():
        return path
    number = 2
    while path.with_name(f"{path.name}-{number}").exists():
        number += 1
    return path.with_name(f"{path.name}-{number}")


def command_train(args: argparse.Namespace) -> None:
    given = {key: getattr(args, key) for key in TRAINING_OPTIONS if getattr(args, key) is not None}
    if args.resume is not None:
        run_dir = args.resume
        config = read_config(run_dir)
        config.pop("format_version")
        model = args.model or config["model"]
        requested = {"model": model, "model_config": {**config["model_config"], **model_config_from(args, model)}}
        check_resumable(config, requested)
        changed = [key for key in given if key != "epochs" and given[key] != config.get(key)]
        if changed:
            raise RunError("--resume continues a run as it was configured; only --epochs may change, not "
                           + ", ".join("--" + key.replace("_", "-") for key in changed))
        config["epochs"] = given.get("epochs", config["epochs"])
    else:
        config = default_config()
        config.update(given)
        config["model"] = args.model or config["model"]
        config["model_config"] = model_config_from(args, config["model"])
        check_new_config(config)
        run_dir = args.out if args.out is not None else next_free(Path("runs") / config["model"])
        if run_dir.exists() and not run_dir.is_dir():
            raise UsageError(f"--out {run_dir} is a file, not a folder; name a new or existing folder")
        if (run_dir / "config.json").exists():
            raise RunError(f"{run_dir} already holds a run; continue it with --resume {run_dir}, or pick another --out")
    trainer = Trainer(config, run_dir, progress=not args.quiet)
    if args.resume is not None:
        trainer.restore()
        print(f"resuming {run_dir} after epoch {trainer.epoch}")
    else:
        write_config(run_dir, config)
        print(f"training {config['model']} in {run_dir} on {config['backend']}")
    trainer.fit(config["epochs"])
    print("metrics:", run_dir / "metrics.jsonl")
    for path in final_figures(trainer):
        print("figure:", path)


def final_figures(trainer: Trainer) -> list[Path]:
    """The figures ``tinyae train`` draws at the end: reconstructions, samples (VAEs) and loss curves."""
    folder = trainer.run_dir / "figures"
    test_images = next(iter(trainer.test_batches))[:32]
    paths = [figures.reconstructions(trainer.model, test_images, folder / "reconstructions.png")]
    if trainer.model.is_variational:
        paths.append(figures.samples(trainer.model, 64, folder / "samples.png"))
    paths.append(figures.loss_curves(read_metrics(trainer.run_dir), folder / "loss.png"))
    return paths


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        raise RunError(f"{run_dir} has no metrics.jsonl yet (no epoch has finished)")
    return [record for _, record in read_metrics_lines(path)]


def load_model(run_dir: Path) -> tuple[dict, Autoencoder, int]:
    """(config, model with the checkpoint's weights in eval mode, epochs trained), on the run's backend."""
    config = read_config(run_dir)
    backend.set_backend(config["backend"])
    model = build_model(config)
    saved = checkpoint.load(run_dir / "checkpoint.npz", checkpoint.expected_arrays(model.state_dict()))
    model.load_state_dict(saved["model"])
    model.eval()
    return config, model, saved["epoch"]


def load_test_set(config: dict, limit: int | None = None, batch_size: int = 500) -> Batches:
    """The first ``limit`` test images in the run's layout, binarized as in training (the same draw)."""
    images, labels = load_split("test", config)
    return Batches(images, labels, batch_size=batch_size, layout=image_layout(config["model"]), limit=limit,
                   binarize=config["binarize"], seed=config["seed"] + 1)


def first_test_images(config: dict, count: int):
    """The first ``count`` test images as one Tensor (fewer if the test set is smaller)."""
    return next(iter(load_test_set(config, count, batch_size=count)))


def command_eval(args: argparse.Namespace) -> None:
    config, model, epoch = load_model(args.run)
    batches = load_test_set(config, args.limit)
    report = {"run": str(args.run), "model": config["model"], "epoch": epoch, "dataset": config["dataset"],
              "test_images": batches.num_images,
              "data": "binarized (dynamic binarization, the test set drawn once)" if config["binarize"]
              else "continuous (grey levels in [0, 1])"}
    tinyae_random.manual_seed(config["seed"])  # the same posterior samples every time
    started = time.perf_counter()
    if model.is_variational:
        report["likelihood"] = model.config["likelihood"]
        on_batch = progress_reporter(args, batches)
        report.update(evaluate.evaluate_vae(model, batches, args.k, on_batch=on_batch))
    else:
        report["note"] = (f"a {config['model']} has no likelihood: only its reconstruction loss is reported "
                          "(no ELBO, no importance-weighted log-likelihood)")
        report.update(evaluate.evaluate_autoencoder(model, batches))
    report["seconds"] = time.perf_counter() - started
    (args.run / "eval.json").write_text(json.dumps(json_safe(report), indent=2, allow_nan=False) + "\n")
    print(evaluate.format_report(report))
    print(args.run / "eval.json")


def json_safe(value):
    """``value`` with every NaN or infinite float replaced by None: eval.json is strict JSON (null where a
    number is undefined, e.g. the KL of a collapsed run), and ``allow_nan=False`` makes sure of it."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def progress_reporter(args: argparse.Namespace, batches: Batches) -> Callable[[int], None]:
    """on_batch for evaluate_vae: a progress bar, and after the first batch an estimate of the total time
    when it exceeds half a minute."""
    from tqdm import tqdm

    bar = tqdm(total=batches.num_images, desc=f"eval, k={args.k}", unit="img", disable=args.quiet,
               leave=False)
    started = time.perf_counter()
    reported = 0

    def on_batch(done: int) -> None:
        nonlocal reported
        if reported == 0:
            estimate = (time.perf_counter() - started) * batches.num_images / done
            if estimate > 30:
                tqdm.write(f"estimated time: about {estimate / 60:.1f} min for {batches.num_images} images "
                           f"with k={args.k} (--limit and -k make it shorter)")
        bar.update(done - reported)
        reported = done
        if done == batches.num_images:
            bar.close()

    return on_batch


def command_figure(args: argparse.Namespace) -> None:
    folder = args.run / "figures"
    if args.command == "plot":
        print(figures.loss_curves(read_metrics(args.run), folder / "loss.png"))
        return
    config, model, _ = load_model(args.run)
    if args.command == "sample":
        if not model.is_variational:
            raise RunError(f"{args.run} holds a {config['model']}, which has no prior to sample from; "
                           "sampling needs a VAE")
        path = figures.samples(model, args.n, folder / "samples.png")
    elif args.command == "reconstruct":
        path = figures.reconstructions(model, first_test_images(config, 32), folder / "reconstructions.png")
    elif args.command == "interpolate":
        images = first_test_images(config, 2 * args.pairs)
        if len(images) < 2 * args.pairs:
            raise RunError(f"--pairs {args.pairs} needs {2 * args.pairs} test images; "
                           f"the test set has {len(images)}")
        path = figures.interpolations(model, images[0::2], images[1::2], folder / "interpolation.png",
                                      args.steps)
    elif args.command == "traverse":
        path = traverse(args, config, model)
    elif args.command == "manifold":
        latent_dim = model.config["latent_dim"]
        if latent_dim != 2:
            raise RunError(f"the manifold needs a 2-D latent space; {args.run} has latent_dim {latent_dim} "
                           "(train with --latent-dim 2, or see tinyae embed)")
        path = figures.manifold(model, folder / "manifold.png", args.size)
    else:  # embed
        batches = load_test_set(config, args.limit)
        with no_grad():
            codes = concatenate([evaluate.latent_means(model, x) for x in batches]).numpy()
        what = "posterior means μ(x)" if model.is_variational else "codes f(x)"
        path = figures.embedding(codes, batches.labels, folder / "embedding.png", f"test-set {what}")
    print(path)


def traverse(args: argparse.Namespace, config: dict, model: Autoencoder) -> Path:
    """The traversal figure: around test digit --index's code, or 0 (--zero); an AE's steps are scaled by
    the spread of its codes over the first 1000 test images, and its --zero center is their mean."""
    latent_dim = model.config["latent_dim"]
    spread = None
    if not model.is_variational:
        with no_grad():
            codes = evaluate.latent_means(model, first_test_images(config, 1000)).numpy()
        spread = codes.mean(axis=0), codes.std(axis=0)
    if args.zero:
        center, center_name = (np.zeros(latent_dim), "0") if spread is None else (spread[0], "the mean code")
    else:
        images = first_test_images(config, max(args.index, 0) + 1)
        if not 0 <= args.index < len(images):
            raise RunError(f"--index {args.index} is not a test image (0 to {len(images) - 1})")
        with no_grad():
            center = evaluate.latent_means(model, images[args.index:args.index + 1]).numpy()[0]
        center_name = f"test digit {args.index}'s code"
    dims = min(args.dims or 10, latent_dim)
    return figures.traversal(model, center, dims, args.run / "figures" / "traversal.png", center_name, spread)


class UsageError(ValueError):
    """A command line that asks for something impossible (exit 2, as argparse's own errors)."""


# The errors a command anticipates: their message is the one line the user sees (exit 1).
RUN_ERRORS = (RunError, CheckpointError, DataError, DataNotFoundError, NonFiniteLossError, StateDictError)


def describe_os_error(error: OSError) -> str:
    """One line for a file system error: the path(s) and the OS's reason (disk full, read-only, ...)."""
    paths = [str(name) for name in (error.filename, error.filename2) if name is not None]
    reason = error.strerror or str(error) or type(error).__name__
    where = " -> ".join(paths) if paths else "a file"
    hint = ""
    if paths and Path(paths[0]).parts[:1] == ("runs",):
        hint = " (the default run folder is runs/ in the working directory; choose another with --out)"
    return f"cannot write or read {where}: {reason}{hint}"


def one_line(text: str) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every anticipated error is one line on stderr, ``tinyae COMMAND: error: ...``:
    exit 2 for a usage error (a bad option, a bad environment variable), 1 for a failure at run time.
    Anything else is one line naming the exception; ``TINYAE_DEBUG=1`` shows its traceback instead."""
    args = build_parser().parse_args(argv)
    prefix = f"tinyae {args.command}: error:"
    try:
        debug = validate.env_flag("TINYAE_DEBUG")
    except ConfigError as error:
        print(f"{prefix} {error}", file=sys.stderr)
        return 2
    try:
        return run_command(args)
    except KeyboardInterrupt:
        print("\ninterrupted; the last finished epoch is kept in its checkpoint", file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        code, message = 1, one_line(error)
        if isinstance(error, (UsageError, ConfigError)):
            code = 2
        elif isinstance(error, RUN_ERRORS):
            pass
        elif isinstance(error, OSError):
            message = describe_os_error(error)
        elif isinstance(error, MemoryError):
            message = (f"out of memory ({message or 'MemoryError'}); try a smaller --batch-size, --hidden or "
                       "--latent-dim")
        else:
            message = (f"unexpected {type(error).__name__}: {message} (rerun with TINYAE_DEBUG=1 for the "
                       "traceback)")
        print(f"{prefix} {message}", file=sys.stderr)
        return code


def run_command(args: argparse.Namespace) -> int:
    try:
        backend.get_backend()  # a bad TINYAE_BACKEND is named here, before any work
    except ValueError as error:
        raise UsageError(str(error)) from None
    except RuntimeError as error:
        raise RunError(str(error)) from None
    if args.command == "gradcheck":
        return gradcheck_catalog.command(args)
    handlers = {"train": command_train, "eval": command_eval}
    handlers.get(args.command, command_figure)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
