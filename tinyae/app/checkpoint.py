"""Checkpoints: one ``.npz`` file, written atomically, read with ``allow_pickle=False``.

A checkpoint holds the run's config, the model's parameters, the optimizer's state and the number of
finished epochs. Arrays are stored as arrays; everything else (the config, hyperparameters, step counts)
as JSON text in a uint8 array, with the nested optimizer state's arrays replaced by references. Nothing in
it is pickled, so loading a checkpoint can never run code.

The random generators need no saved state: every epoch reseeds them from (seed, epoch) (see
``tinyae.app.train``), so a run resumed at an epoch boundary draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import backend

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, pickled, or from an incompatible version."""


def _pack(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """JSON-able skeleton of ``value``; arrays go to ``arrays`` and are referenced by key."""
    if backend.is_array(value):
        key = f"state/{len(arrays)}"
        arrays[key] = backend.to_backend(value, "numpy")
        return {"array": key}
    if isinstance(value, dict):
        return {"dict": [[key, _pack(item, arrays)] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"list": [_pack(item, arrays) for item in value]}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _unpack(value: Any, arrays) -> Any:
    if isinstance(value, dict):
        if "array" in value:
            return arrays[value["array"]]
        if "dict" in value:
            return {key: _unpack(item, arrays) for key, item in value["dict"]}
        return [_unpack(item, arrays) for item in value["list"]]
    return value


def save(path: Path, config: dict, model_state: dict, optimizer_state: dict, epoch: int,
         before_replace: Callable[[], None] | None = None) -> None:
    """Write the checkpoint to a temporary file beside ``path``, fsync it, then rename it over ``path``
    (``before_replace`` is called just before the rename: a test's kill point).

    A crash at any moment leaves either the old checkpoint or the new one, never a partial file. The caller
    fsyncs the folder to make the rename durable (``tinyae.app.run.Run.save_checkpoint``).
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {f"model/{name}": backend.to_backend(array, "numpy")
                                     for name, array in model_state.items()}
    meta = {"format_version": FORMAT_VERSION, "config": config, "epoch": epoch,
            "optimizer": _pack(optimizer_state, arrays)}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load(path: Path) -> dict:
    """{"config", "epoch", "model": {name: array}, "optimizer": state dict}, all on the host (NumPy)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise CheckpointError(f"{path} contains pickled objects; refusing to load it (a checkpoint must "
                                  "never be able to run code)") from None
        raise CheckpointError(f"{path} is not a readable checkpoint: {error}") from None
    except (OSError, EOFError) as error:
        raise CheckpointError(f"{path} is not a readable checkpoint: {error}") from None
    if "meta" not in arrays:
        raise CheckpointError(f"{path} is not a tinyae checkpoint (no 'meta' entry)")
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {meta.get('format_version')!r}; this tinyae "
                              f"reads format {FORMAT_VERSION}")
    model = {key[len("model/"):]: value for key, value in arrays.items() if key.startswith("model/")}
    return {"config": meta["config"], "epoch": meta["epoch"], "model": model,
            "optimizer": _unpack(meta["optimizer"], arrays)}
