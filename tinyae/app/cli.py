"""The tinyae command: train an autoencoder on MNIST, then evaluate it and draw what it learned.

examples:
    tinyae train                          # the default VAE, 10 epochs, into runs/vae
    tinyae train --model conv-vae --epochs 5 --limit 10000
    tinyae train --resume runs/vae --epochs 20
    tinyae eval runs/vae -k 1000          # test −ELBO, IWAE log-likelihood, KL per dimension, active units
    tinyae sample runs/vae -n 64          # and reconstruct, interpolate, traverse, manifold, embed, plot
    tinyae train --model cvae && tinyae sample runs/cvae --grid   # a conditional VAE: digits on demand
    tinyae explore runs/vae               # runs/vae/explore.html: sliders over the latent space
"""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .. import __version__, backend
from . import browser, evaluate, process, validate
from .browser import BrowserError
from .checkpoint import CheckpointError
from .explore import ExploreError
from .validate import MAX_WIDTH, ConfigError
from ..data import DataError, DataNotFoundError
from ..models import MODELS
from ..nn.module import StateDictError
from ..testing import catalog as gradcheck_catalog
from .run import Run, RunError, holds_run, is_free, write_atomically
from .train import NonFiniteLossError, Trainer, check_resumable, default_config

# --option → (model_config key, the models it applies to: those of validate.MODEL_KEYS, the one list)
MODEL_OPTIONS = {option: (key, validate.MODEL_KEYS[key][1]) for option, key in (
    ("hidden", "hidden"), ("latent_dim", "latent_dim"), ("beta", "beta"), ("likelihood", "likelihood"),
    ("decoder", "decoder"), ("sparsity", "sparsity"), ("penalty", "penalty"), ("noise", "noise_level"),
    ("noise_type", "noise"))}
MAX_FIGURE_COUNT = 1000  # -n, --pairs, --steps, --dims, --size
TRAINING_OPTIONS = ("epochs", "batch_size", "lr", "optimizer", "backend", "seed", "binarize", "dataset",
                    "data_dir", "limit", "test_limit", "kl_warmup", "log_grad_norms")


WIDTH = validate.count(MAX_WIDTH)
COUNT = validate.count(10**9)
FIGURE_COUNT = validate.count(MAX_FIGURE_COUNT)
NON_NEGATIVE = validate.non_negative_float()


def build_parser() -> argparse.ArgumentParser:
    """The command line: every help text is plain text, every command has a description and --threads."""
    summary, _, examples = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(prog="tinyae", description=summary, epilog=examples,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tinyae {__version__}")
    every = argparse.ArgumentParser(add_help=False)  # the options of every command
    every.add_argument("--threads", type=validate.count(validate.MAX_THREADS), metavar="N",
                       help="threads of the BLAS and OpenMP pools (default: the machine's physical cores, "
                            f"{process.physical_cores()} here; 1 where other programs keep the cores busy)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, help=help_text, description=help_text, parents=[every])

    train = command("train", "train a model on MNIST or Fashion-MNIST and write a run folder (config.json, "
                             "metrics.jsonl, checkpoint.npz, figures/)")
    model = train.add_argument_group("model")
    model.add_argument("--model", choices=list(MODELS), help="which autoencoder (default: vae)")
    model.add_argument("--latent-dim", type=WIDTH, help=f"size of the code z (default 20; sparse-ae 64; cvae and conv-cvae 5; at most {MAX_WIDTH})")
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
    run.add_argument("--out", type=Path,
                     help="run folder (default runs/MODEL, numbered if taken); a folder that holds a run of the "
                          "same options is continued, as --resume does")
    run.add_argument("--resume", type=Path, metavar="RUN",
                     help="continue RUN in place up to --epochs (a run killed at any moment included); if RUN "
                          "already has that many epochs, nothing is trained")
    run.add_argument("--log-grad-norms", action="store_true", default=None,
                     help="write each layer's gradient norm, averaged over the epoch's steps, into metrics.jsonl "
                          "(tinyae plot draws them)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    def on_a_run(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = command(name, help_text)
        parser.add_argument("run", type=Path, metavar="RUN", help="a run folder written by tinyae train")
        return parser

    def figure_command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = on_a_run(name, help_text)
        parser.add_argument("--output", type=validate.figure_file, metavar="FILE",
                            help=f"where to write the figure, its format named by the suffix (png, pdf, svg, ...; "
                                 f"default RUN/figures/{name}.png, which no other command writes)")
        return parser

    evaluation = on_a_run("eval", "test-set negative ELBO, IWAE log-likelihood, KL per dimension, "
                                     "active units")
    evaluation.add_argument("-k", type=validate.count(validate.MAX_SAMPLES), default=1000,
                            help="importance samples per image for log p(x) (default 1000)")
    evaluation.add_argument("--limit", type=COUNT, help="only the first N test images (default: all)")
    evaluation.add_argument("--quiet", action="store_true", help="no progress bar")
    sample = figure_command("sample", "decode n draws from p(z); a conditional VAE's of the digits asked for")
    sample.add_argument("-n", type=FIGURE_COUNT,
                        help="number of samples (default 64); with --grid, of columns (default 10)")
    which = sample.add_mutually_exclusive_group()  # the grid draws every digit
    which.add_argument("--digit", type=validate.index(),
                       help="cvae: draw only this digit (default: 0-9 in turn)")
    which.add_argument("--grid", action="store_true",
                        help="cvae: one row per digit, the same n codes z in each row (style held, digit varied)")
    figure_command("reconstruct", "test digits and their reconstructions")
    interpolate = figure_command("interpolate", "decode straight lines in latent space between test digits")
    interpolate.add_argument("--pairs", type=FIGURE_COUNT, default=8, help="pairs of digits, one a row (default 8)")
    interpolate.add_argument("--steps", type=FIGURE_COUNT, default=10, help="points per line (default 10)")
    traverse = figure_command("traverse", "vary one latent dimension at a time from -3σ to 3σ")
    traverse.add_argument("--dims", type=FIGURE_COUNT, help="dimensions, one a row (default 10, or all if fewer)")
    traverse.add_argument("--index", type=validate.index(), default=0,
                          help="test digit whose code the others keep (default 0)")
    traverse.add_argument("--zero", action="store_true",
                          help="keep the other dimensions at 0 instead (an AE's: at its mean test code)")
    manifold = figure_command("manifold", "the decoded grid over a 2-D latent space (for --latent-dim 2)")
    manifold.add_argument("--size", type=FIGURE_COUNT, default=20, help="grid points per side (default 20)")
    manifold.add_argument("--digit", type=validate.index(), help="cvae: the digit drawn (default 0)")
    embed = figure_command("embed", "the test set's latent means, colored by digit (PCA above 2-D)")
    embed.add_argument("--limit", type=COUNT, help="only the first N test images (default: all)")
    figure_command("plot", "loss curves from metrics.jsonl")
    arithmetic = figure_command("arithmetic", "latent arithmetic: add an attribute vector (thicker strokes, "
                                              "more slant) to the codes of test digits")
    arithmetic.add_argument("--attribute", choices=["thickness", "slant"], default="thickness",
                            help="thickness: the stroke mass (summed intensity); slant: the shear of the "
                                 "ink, columns to the right per row up (default thickness)")
    arithmetic.add_argument("--rows", type=FIGURE_COUNT, default=8,
                            help="test digits, one a row: the first 0, the first 1, ... (default 8)")
    arithmetic.add_argument("--limit", type=COUNT, default=2000,
                            help="the first N test images, whose codes give the vector (default 2000)")
    explore = on_a_run("explore", "write a self-contained HTML page that runs the decoder in the browser: "
                                  "a slider per latent dimension, a 2-D pad, random draws, test digits")
    explore.add_argument("--output", type=file_ending(".html", ".htm"), metavar="FILE",
                         help="where to write the page (default RUN/explore.html)")
    explore.add_argument("--screenshot", type=file_ending(".png"), metavar="PNG",
                         help="also write a screenshot of the page in a headless Chromium (chromium on the "
                              "PATH, or $TINYAE_CHROMIUM)")
    gradcheck = command("gradcheck", gradcheck_catalog.DESCRIPTION)
    gradcheck_catalog.add_arguments(gradcheck)
    return parser


def file_ending(*suffixes: str) -> Callable[[str], Path]:
    """An option's type: a file name (not a folder) ending in one of ``suffixes``."""
    def check(text_value: str) -> Path:
        path = Path(text_value)
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"expected a file name, got the folder {text_value!r}")
        if path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"expected a file name ending in {' or '.join(suffixes)}, "
                                             f"got {text_value!r}")
        return path

    return check


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
    """``path``, or the first of path-2, path-3, ... that is free (see ``tinyae.app.run.is_free``)."""
    if is_free(path):
        return path
    number = 2
    while not is_free(path.with_name(f"{path.name}-{number}")):
        number += 1
    return path.with_name(f"{path.name}-{number}")


def command_train(args: argparse.Namespace) -> None:
    given = {key: getattr(args, key) for key in TRAINING_OPTIONS if getattr(args, key) is not None}
    if args.resume is not None:
        run_dir = args.resume
        config = Run.open(run_dir).config
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
        if holds_run(run_dir):
            differences = Run.open(run_dir).differences(config)
            if differences:
                raise RunError(f"{run_dir} holds a run with other options ({'; '.join(differences)}); continue "
                               f"it with --resume {run_dir}, or pick another --out")
    epochs = config["epochs"]
    resume_command = f"tinyae train --resume {shlex.quote(str(run_dir))} --epochs {epochs}"
    existed = holds_run(run_dir)
    trainer = None
    try:
        trainer = Trainer(config, run_dir, progress=not args.quiet)  # creates the folder once all is built
        if trainer.epoch >= epochs:
            print(f"{run_dir} already has {trainer.epoch} epochs (asked for {epochs}); nothing to train")
        elif trainer.epoch > 0:
            print(f"resuming {run_dir} after epoch {trainer.epoch}")
        elif existed:
            print(f"training {config['model']} in {run_dir} on {config['backend']}, from the start (the run "
                  "has no checkpoint yet)")
        else:
            print(f"training {config['model']} in {run_dir} on {config['backend']}")
        trainer.fit(epochs)
        print("metrics:", run_dir / "metrics.jsonl")
        for path in trainer.run.final_figures():
            print("figure:", path)
    except KeyboardInterrupt:
        if trainer is None:
            raise KeyboardInterrupt(f"{run_dir} is as it was" if existed else "nothing was written") from None
        run = Run.open(run_dir, writable=True)  # an epoch cut between its metrics line and checkpoint: drop it
        raise KeyboardInterrupt(f"{run_dir} keeps {run.epoch} finished epochs; continue with: "
                                f"{resume_command}") from None


def command_eval(args: argparse.Namespace) -> None:
    run = Run.open(args.run)
    report = run.evaluate(args.k, args.limit, on_batch=progress_reporter(args))
    path = run.write_eval(report)
    print(evaluate.format_report(report))
    print(path)


def progress_reporter(args: argparse.Namespace) -> Callable[[int, int], None]:
    """on_batch(images done, images in all) for ``Run.evaluate``: a progress bar, and after the first batch
    an estimate of the total time when it exceeds half a minute."""
    from tqdm import tqdm

    bar = None
    started = time.perf_counter()
    reported = 0

    def on_batch(done: int, total: int) -> None:
        nonlocal bar, reported
        if bar is None:
            bar = tqdm(total=total, desc=f"eval, k={args.k}", unit="img", disable=args.quiet, leave=False)
            estimate = (time.perf_counter() - started) * total / done
            if estimate > 30:
                tqdm.write(f"estimated time: about {estimate / 60:.1f} min for {total} images "
                           f"with k={args.k} (--limit and -k make it shorter)")
        bar.update(done - reported)
        reported = done
        if done == total:
            bar.close()

    return on_batch


def command_figure(args: argparse.Namespace) -> None:
    run = Run.open(args.run)
    path = args.output  # None: RUN/figures/COMMAND.png
    draw = {
        "plot": lambda: run.loss_curves(path=path),
        "sample": lambda: run.samples(args.n or (10 if args.grid else 64), path=path, digit=args.digit,
                                      grid=args.grid),
        "reconstruct": lambda: run.reconstructions(path=path),
        "interpolate": lambda: run.interpolations(args.pairs, args.steps, path=path),
        "traverse": lambda: run.traversal(args.dims, args.index, args.zero, path=path),
        "manifold": lambda: run.manifold(args.size, path=path, digit=args.digit),
        "embed": lambda: run.embedding(args.limit, path=path),
        "arithmetic": lambda: run.arithmetic(args.attribute, args.rows, args.limit, path=path),
    }
    print(draw[args.command]())


def command_explore(args: argparse.Namespace) -> None:
    if args.screenshot is not None:  # no page written when the screenshot cannot be taken
        if not Path(args.screenshot).parent.is_dir():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(args.screenshot))
        browser.find_chromium()
    path = Run.open(args.run).explorer(args.output)
    print(path)
    if args.screenshot is not None:
        with browser.Browser() as chromium:
            chromium.open(path)
            if chromium.errors:
                raise browser.BrowserError(f"the page {path} reports errors: {'; '.join(chromium.errors)}")
            write_atomically(Path(args.screenshot), chromium.screenshot())
        print(args.screenshot)


class UsageError(ValueError):
    """A command line that asks for something impossible (exit 2, as argparse's own errors)."""


# The errors a command anticipates: their message is the one line the user sees (exit 1).
RUN_ERRORS = (RunError, CheckpointError, DataError, DataNotFoundError, NonFiniteLossError, StateDictError,
              BrowserError, ExploreError)


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
        debug = backend.env_flag("TINYAE_DEBUG", False)
    except ValueError as error:
        print(f"{prefix} {error}", file=sys.stderr)
        return 2
    try:
        return run_command(args)
    except KeyboardInterrupt as interrupt:
        print("\ninterrupted" + (f"; {interrupt}" if str(interrupt) else ""), file=sys.stderr)
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
    """The command's work, after the process settings; a bad environment variable is a usage error."""
    try:
        backend.get_backend()  # a bad TINYAE_BACKEND is named here, before any work
        process.configure_process(args.threads)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except RuntimeError as error:
        raise RunError(str(error)) from None
    if args.command == "gradcheck":
        return gradcheck_catalog.command(args)
    handlers = {"train": command_train, "eval": command_eval, "explore": command_explore}
    handlers.get(args.command, command_figure)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
