"""The ``tinyae`` command: train a model on MNIST, then evaluate it and draw what it learned.

    tinyae train                          # the default VAE, 10 epochs, into runs/vae
    tinyae train --model conv-vae --epochs 5 --limit 10000
    tinyae train --resume runs/vae --epochs 20
    tinyae sample runs/vae -n 64          # and reconstruct, plot, ... (see `tinyae --help`)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import figures
from .checkpoint import CheckpointError
from .data import DataError, DataNotFoundError
from .models import MODELS
from .train import (
    NonFiniteLossError,
    RunError,
    Trainer,
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
    parser = argparse.ArgumentParser(prog="tinyae", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model on MNIST and write a run folder")
    model = train.add_argument_group("model")
    model.add_argument("--model", choices=list(MODELS), help="which autoencoder (default: vae)")
    model.add_argument("--latent-dim", type=positive_int, help="size of the code z (default 20; sparse-ae 64)")
    model.add_argument("--hidden", type=positive_int, help="width of the MLP hidden layer (default 400)")
    model.add_argument("--beta", type=non_negative_float, help="weight of the KL term: β-VAE (default 1)")
    model.add_argument("--likelihood", choices=["bernoulli", "gaussian"], help="p(x|z) of a VAE (default bernoulli)")
    model.add_argument("--decoder", choices=["transpose", "upsample"], help="conv decoder kind (default transpose)")
    model.add_argument("--sparsity", type=non_negative_float, help="weight λ of the sparsity penalty (default 1e-3)")
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
    run.add_argument("--out", type=Path, help="run folder to create (default runs/MODEL, numbered if taken)")
    run.add_argument("--resume", type=Path, metavar="RUN", help="continue RUN in place up to --epochs")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    for name, help_text in (("sample", "decode n draws from p(z)"), ("reconstruct", "test digits and their reconstructions"),
                            ("plot", "loss curves from metrics.jsonl")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("run", type=Path, metavar="RUN")
        if name == "sample":
            command.add_argument("-n", type=positive_int, default=64, help="number of samples (default 64)")
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
        run_dir = args.out if args.out is not None else next_free(Path("runs") / config["model"])
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
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def load_run(run_dir: Path) -> Trainer:
    """A trainer restored from a run folder's checkpoint (for the commands that draw figures)."""
    config = read_config(run_dir)
    config.pop("format_version")
    trainer = Trainer(config, run_dir, progress=False)
    trainer.restore()
    return trainer


def command_figure(args: argparse.Namespace) -> None:
    if args.command == "plot":
        print(figures.loss_curves(read_metrics(args.run), args.run / "figures" / "loss.png"))
        return
    trainer = load_run(args.run)
    folder = args.run / "figures"
    if args.command == "sample":
        if not trainer.model.is_variational:
            raise RunError(f"{args.run} holds a {trainer.config['model']}, which has no prior to sample from; "
                           "sampling needs a VAE")
        print(figures.samples(trainer.model, args.n, folder / "samples.png"))
    elif args.command == "reconstruct":
        images = next(iter(trainer.test_batches))[:32]
        print(figures.reconstructions(trainer.model, images, folder / "reconstructions.png"))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": command_train}
    try:
        handlers.get(args.command, command_figure)(args)
    except (RunError, CheckpointError, DataError, DataNotFoundError, NonFiniteLossError) as error:
        print(f"tinyae {args.command}: error: {error}", file=sys.stderr)
        return 1
    except RuntimeError as error:
        if "cupy" not in str(error):
            raise
        print(f"tinyae {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; the last finished epoch is kept in its checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
