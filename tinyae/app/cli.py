"""The tinyae command: train an autoencoder on MNIST, then evaluate it and draw what it learned.

examples:
    tinyae train                          # the default VAE, 10 epochs, into runs/vae
    tinyae train --model conv-vae --epochs 5 --limit 10000
    tinyae train --resume runs/vae --epochs 20
    tinyae eval runs/vae -k 1000          # test −ELBO, IWAE log-likelihood, KL per dimension, active units
    tinyae sample runs/vae -n 64          # and reconstruct, interpolate, traverse, manifold, embed, plot
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .. import __version__
from . import evaluate, process
from .checkpoint import CheckpointError
from ..data import DataError, DataNotFoundError
from ..models import MODELS
from ..nn.module import StateDictError
from ..testing import catalog as gradcheck_catalog
from .run import Run, RunError, holds_run, is_free
from .train import NonFiniteLossError, Trainer, check_resumable, default_config

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
TRAINING_OPTIONS = ("epochs", "batch_size", "lr", "optimizer", "backend", "seed", "binarize", "dataset",
                    "data_dir", "limit", "test_limit", "kl_warmup")


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line: every help text is plain text, every command has a description and --threads."""
    summary, _, examples = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(prog="tinyae", description=summary, epilog=examples,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tinyae {__version__}")
    every = argparse.ArgumentParser(add_help=False)  # the options of every command
    every.add_argument("--threads", type=positive_int, metavar="N",
                       help="threads of the BLAS and OpenMP pools (default: the machine's physical cores, "
                            f"{process.physical_cores()} here; 1 where other programs keep the cores busy)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, help=help_text, description=help_text, parents=[every])

    train = command("train", "train a model on MNIST or Fashion-MNIST and write a run folder (config.json, "
                             "metrics.jsonl, checkpoint.npz, figures/)")
    model = train.add_argument_group("model")
    model.add_argument("--model", choices=list(MODELS), help="which autoencoder (default: vae)")
    model.add_argument("--latent-dim", type=positive_int, help="size of the code z (default 20; sparse-ae 64)")
    model.add_argument("--hidden", type=positive_int, help="width of the MLP hidden layer (default 400)")
    model.add_argument("--beta", type=non_negative_float, help="weight of the KL term: β-VAE (default 1)")
    model.add_argument("--likelihood", choices=["bernoulli", "gaussian"], help="p(x|z) of a VAE (default bernoulli)")
    model.add_argument("--decoder", choices=["transpose", "upsample"], help="conv decoder kind (default transpose)")
    model.add_argument("--sparsity", type=non_negative_float, help="weight λ of the sparsity penalty (default 1)")
    model.add_argument("--penalty", choices=["l1", "kl"], help="sparsity penalty (default l1)")
    model.add_argument("--noise", type=non_negative_float, help="denoising: σ, or p for --noise-type mask (default 0.3)")
    model.add_argument("--noise-type", choices=["gaussian", "mask"], help="denoising corruption (default gaussian)")
    run = train.add_argument_group("training")
    run.add_argument("--epochs", type=positive_int, help="train until this many epochs are done (default 10)")
    run.add_argument("--batch-size", type=positive_int, help="images per step (default 128)")
    run.add_argument("--lr", type=non_negative_float, help="learning rate (default 1e-3)")
    run.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], help="(default adam; sgd uses momentum 0.9)")
    run.add_argument("--kl-warmup", type=non_negative_float, help="epochs over which the KL weight rises 0 → 1")
    run.add_argument("--backend", choices=["numpy", "cupy"], help="numpy (CPU) or cupy (GPU) (default numpy)")
    run.add_argument("--seed", type=int, help="seed of every random draw (default 0)")
    run.add_argument("--binarize", action="store_true", default=None, help="dynamic binarization of the inputs")
    run.add_argument("--dataset", choices=["mnist", "fashion-mnist"], help="(default mnist)")
    run.add_argument("--data-dir", help="folder with the IDX files, looked at first")
    run.add_argument("--limit", type=positive_int, help="use only the first N training images")
    run.add_argument("--test-limit", type=positive_int, help="use only the first N test images")
    run.add_argument("--out", type=Path,
                     help="run folder (default runs/MODEL, numbered if taken); a folder that holds a run of the "
                          "same options is continued, as --resume does")
    run.add_argument("--resume", type=Path, metavar="RUN",
                     help="continue RUN in place up to --epochs (a run killed at any moment included); if RUN "
                          "already has that many epochs, nothing is trained")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    def run_command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = command(name, help_text)
        parser.add_argument("run", type=Path, metavar="RUN", help="a run folder written by tinyae train")
        return parser

    evaluation = run_command("eval", "test-set negative ELBO, IWAE log-likelihood, KL per dimension, "
                                     "active units")
    evaluation.add_argument("-k", type=positive_int, default=1000,
                            help="importance samples per image for log p(x) (default 1000)")
    evaluation.add_argument("--limit", type=positive_int, help="only the first N test images (default: all)")
    evaluation.add_argument("--quiet", action="store_true", help="no progress bar")
    run_command("sample", "decode n draws from p(z)").add_argument(
        "-n", type=positive_int, default=64, help="number of samples (default 64)")
    run_command("reconstruct", "test digits and their reconstructions")
    interpolate = run_command("interpolate", "decode straight lines in latent space between test digits")
    interpolate.add_argument("--pairs", type=positive_int, default=8, help="pairs of digits, one a row (default 8)")
    interpolate.add_argument("--steps", type=positive_int, default=10, help="points per line (default 10)")
    traverse = run_command("traverse", "vary one latent dimension at a time from -3σ to 3σ")
    traverse.add_argument("--dims", type=positive_int, help="dimensions, one a row (default 10, or all if fewer)")
    traverse.add_argument("--index", type=int, default=0, help="test digit whose code the others keep (default 0)")
    traverse.add_argument("--zero", action="store_true",
                          help="keep the other dimensions at 0 instead (an AE's: at its mean test code)")
    manifold = run_command("manifold", "the decoded grid over a 2-D latent space (for --latent-dim 2)")
    manifold.add_argument("--size", type=positive_int, default=20, help="grid points per side (default 20)")
    embed = run_command("embed", "the test set's latent means, colored by digit (PCA above 2-D)")
    embed.add_argument("--limit", type=positive_int, help="only the first N test images (default: all)")
    run_command("plot", "loss curves from metrics.jsonl")
    gradcheck = command("gradcheck", gradcheck_catalog.DESCRIPTION)
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
            raise RunError(f"{flag} does not apply to --model {model} (it applies to {', '.join(models)})")
        config[key] = value
    return config


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
        run_dir = args.out if args.out is not None else next_free(Path("runs") / config["model"])
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
    draw = {
        "plot": lambda: run.loss_curves(),
        "sample": lambda: run.samples(args.n),
        "reconstruct": lambda: run.reconstructions(),
        "interpolate": lambda: run.interpolations(args.pairs, args.steps),
        "traverse": lambda: run.traversal(args.dims, args.index, args.zero),
        "manifold": lambda: run.manifold(args.size),
        "embed": lambda: run.embedding(args.limit),
    }
    print(draw[args.command]())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    process.configure_process(args.threads)
    if args.command == "gradcheck":
        return gradcheck_catalog.command(args)
    handlers = {"train": command_train, "eval": command_eval}
    try:
        handlers.get(args.command, command_figure)(args)
    except (RunError, CheckpointError, DataError, DataNotFoundError, NonFiniteLossError, StateDictError) as error:
        print(f"tinyae {args.command}: error: {error}", file=sys.stderr)
        return 1
    except RuntimeError as error:
        if "cupy" not in str(error):
            raise
        print(f"tinyae {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        print("\ninterrupted" + (f"; {interrupt}" if str(interrupt) else ""), file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
