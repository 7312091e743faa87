"""What the application accepts: every option's range, and the check of a whole run config.

The same checks serve the command line (``argparse`` types: a bad option is a usage error, exit 2) and
the ``config.json`` of a run folder (a tampered file is a ``ConfigError`` naming the key, the value and
what is expected). Every number meant to be finite is checked to be finite: ``inf`` and ``nan`` are
refused everywhere.

Sizes are capped so that a typo cannot ask for terabytes: ``MAX_WIDTH`` for --hidden and --latent-dim
(a 16384-wide layer on 784 pixels is 51 MB of float32 weights, four times that with Adam's state and the
gradient), ``MAX_BATCH`` for --batch-size, ``MAX_COUNT`` for the figure and evaluation counts.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

MAX_WIDTH = 16384
MAX_BATCH = 65536
MAX_EPOCHS = 100_000
MAX_COUNT = 10_000
MAX_SAMPLES = 100_000  # eval -k
MAX_SEED = 2**63 - 1
MAX_THREADS = 4096


class ConfigError(ValueError):
    """A value outside what it must be; the message names the value and what is expected."""


# Plain checks: (name, value) -> value, or ConfigError ------------------------------------------------------

def integer(low: int, high: int | None = None) -> Callable[[str, object], int]:
    """A check for an int in [low, high] (no bool, no float)."""
    def check(name: str, value: object) -> int:
        if type(value) is not int or value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f">= {low}"
            raise ConfigError(f"{name} must be an integer {bound}, got {value!r}")
        return value
    return check


def number(low: float, high: float | None = None, *, above: bool = False,
           below: bool = False) -> Callable[[str, object], float]:
    """A check for a finite number in [low, high] (``above``: > low; ``below``: < high)."""
    def check(name: str, value: object) -> float:
        ok = type(value) in (int, float) and math.isfinite(value)
        ok = ok and (value > low if above else value >= low)
        ok = ok and (high is None or (value < high if below else value <= high))
        if not ok:
            bound = f"{'>' if above else '>='} {low}" + (
                f" and {'<' if below else '<='} {high}" if high is not None else "")
            raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")
        return float(value)
    return check


def choice(*options: str) -> Callable[[str, object], str]:
    def check(name: str, value: object) -> str:
        if value not in options or type(value) is not str:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, got {value!r}")
        return value
    return check


def optional(check: Callable[[str, object], object]) -> Callable[[str, object], object]:
    return lambda name, value: None if value is None else check(name, value)


def boolean(name: str, value: object) -> bool:
    if type(value) is not bool:
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def text(name: str, value: object) -> str:
    if type(value) is not str or not value:
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
    return value


WIDTH = integer(1, MAX_WIDTH)
NON_NEGATIVE = number(0)
POSITIVE = number(0, above=True)

# model_config key -> (check, the models that have it)
MODEL_KEYS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "hidden": (WIDTH, ("ae", "sparse-ae", "denoising-ae", "vae", "cvae")),
    "latent_dim": (WIDTH, ("ae", "sparse-ae", "denoising-ae", "vae", "conv-ae", "conv-vae", "cvae", "conv-cvae")),
    "beta": (NON_NEGATIVE, ("vae", "conv-vae", "cvae", "conv-cvae")),
    "likelihood": (choice("bernoulli", "gaussian"), ("vae", "conv-vae", "cvae", "conv-cvae")),
    "decoder": (choice("transpose", "upsample"), ("conv-ae", "conv-vae", "conv-cvae")),
    "sparsity": (NON_NEGATIVE, ("sparse-ae",)),
    "penalty": (choice("l1", "kl"), ("sparse-ae",)),
    "noise_level": (NON_NEGATIVE, ("denoising-ae",)),
    "noise": (choice("gaussian", "mask"), ("denoising-ae",)),
}

# run config key -> check
RUN_KEYS: dict[str, Callable[[str, object], object]] = {
    "model": choice("ae", "sparse-ae", "denoising-ae", "vae", "conv-ae", "conv-vae", "cvae", "conv-cvae"),
    "dataset": choice("mnist", "fashion-mnist"),
    "data_dir": optional(text),
    "binarize": boolean,
    "epochs": integer(1, MAX_EPOCHS),
    "batch_size": integer(1, MAX_BATCH),
    "lr": POSITIVE,
    "optimizer": choice("adam", "adamw", "sgd"),
    "seed": integer(0, MAX_SEED),
    "limit": optional(integer(1)),
    "test_limit": optional(integer(1)),
    "kl_warmup": NON_NEGATIVE,
    "backend": choice("numpy", "cupy", "strict"),
    "log_grad_norms": boolean,
}
# Keys added to the config after runs were first written: a config.json without one means this value.
LATER_KEYS = {"log_grad_norms": False}


def check_model_config(model: str, model_config: object) -> None:
    """Every key of ``model_config`` is one that ``model`` has, with a value in its range; a mask noise
    level is a probability (< 1)."""
    if not isinstance(model_config, dict):
        raise ConfigError(f"model_config must be an object, got {model_config!r}")
    for key, value in model_config.items():
        if key not in MODEL_KEYS or model not in MODEL_KEYS[key][1]:
            known = sorted(k for k, (_, models) in MODEL_KEYS.items() if model in models)
            raise ConfigError(f"model_config has {key!r}, which a {model} does not have "
                              f"(expected some of {', '.join(known)})")
        MODEL_KEYS[key][0](f"model_config.{key}", value)
    if model_config.get("noise") == "mask" and model_config.get("noise_level", 0.3) >= 1:
        raise ConfigError(f"model_config.noise_level (--noise) is a masking probability with noise 'mask': it "
                          f"must be >= 0 and < 1, got {model_config['noise_level']!r}")


def check_config(config: object, extra: tuple[str, ...] = ()) -> None:
    """A whole run config (``config.json`` less ``extra`` keys such as format_version): every key present,
    none unknown, each value of the right type and range."""
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a JSON object, got {type(config).__name__}")
    expected = set(RUN_KEYS) | {"model_config"} | set(extra)
    missing, unknown = sorted(expected - set(config)), sorted(set(config) - expected)
    if missing:
        raise ConfigError(f"missing keys: {', '.join(missing)}")
    if unknown:
        raise ConfigError(f"unknown keys: {', '.join(unknown)} (expected {', '.join(sorted(expected))})")
    for key, check in RUN_KEYS.items():
        check(key, config[key])
    check_model_config(config["model"], config["model_config"])


# argparse types --------------------------------------------------------------------------------------------

def option_type(check: Callable[[str, object], object], parse: Callable[[str], object],
                what: str) -> Callable[[str], object]:
    """An argparse type: ``parse`` the text, then ``check`` it; errors become usage errors (exit 2)."""
    def convert(text_value: str):
        try:
            value = parse(text_value)
            check("value", value)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text_value!r}") from None
        return value
    convert.__name__ = what  # argparse names the type in some messages
    return convert


def _int(text_value: str) -> int:
    return int(text_value.strip())


def _float(text_value: str) -> float:
    return float(text_value)


def count(high: int) -> Callable[[str], int]:
    return option_type(integer(1, high), _int, f"an integer from 1 to {high}")


def non_negative_float() -> Callable[[str], float]:
    return option_type(NON_NEGATIVE, _float, "a finite number >= 0")


def positive_float() -> Callable[[str], float]:
    return option_type(POSITIVE, _float, "a finite number > 0")


def seed() -> Callable[[str], int]:
    return option_type(integer(0, MAX_SEED), _int, f"an integer from 0 to {MAX_SEED}")


def index() -> Callable[[str], int]:
    return option_type(integer(0), _int, "an integer >= 0")


def existing_folder(text_value: str) -> str:
    """An argparse type for --data-dir: a folder that exists."""
    if not Path(text_value).expanduser().is_dir():
        why = "not a folder" if Path(text_value).exists() else "no such folder"
        raise argparse.ArgumentTypeError(f"expected an existing folder, got {text_value!r} ({why})")
    return text_value


def figure_file(text_value: str) -> Path:
    """--output: a file (not a folder) whose suffix names a format matplotlib writes (png, pdf, svg, ...)."""
    from .figures import supported_formats  # matplotlib, imported only when the option is given

    path = Path(text_value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a file name, got the folder {text_value!r}")
    suffix = path.suffix[1:].lower()
    if suffix not in supported_formats():
        raise argparse.ArgumentTypeError(f"expected a file name ending in one of "
                                         f".{', .'.join(supported_formats())}, got {text_value!r}")
    return path
