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
import math
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


META_LIMIT = 1 << 20  # bytes of JSON metadata a checkpoint may hold
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)


def expected_arrays(model_state: dict) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{name: (shape, dtype)} of a model's state dict: what ``load`` accepts as its ``expected``."""
    return {name: (tuple(array.shape), np.dtype(array.dtype)) for name, array in model_state.items()}


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, allowed) -> np.ndarray:
    """One ``.npy`` member, its header checked before its data is read: no object dtype, a shape and dtype
    that ``allowed(shape, dtype)`` accepts, and a stored size that is exactly what the header declares.
    At most the declared bytes are read."""
    name = info.filename[:-len(".npy")]
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise ValueError(f"unsupported .npy format version {version}")
        shape, fortran_order, dtype = readers[version](stream)
        if dtype.hasobject:
            raise CheckpointError(f"{path} contains pickled objects (member {name!r} has dtype {dtype}); "
                                  "refusing to load it (a checkpoint must never be able to run code)")
        problem = allowed(name, shape, dtype)
        if problem:
            raise CheckpointError(f"{path}: member {name!r} {problem}")
        size = math.prod(shape) * dtype.itemsize
        if info.file_size != stream.tell() + size:
            raise CheckpointError(f"{path}: member {name!r} holds {info.file_size - stream.tell()} bytes of "
                                  f"data, but its header declares {size} ({dtype}, shape {shape})")
        buffer = bytearray(size)
        if stream.readinto(buffer) != size or stream.read(1):  # reading to the end checks the CRC
            raise CheckpointError(f"{path}: member {name!r} is shorter or longer than its header declares")
    array = np.frombuffer(buffer, dtype=dtype)
    return array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)


@contextmanager
def _archive(path: Path) -> Iterator[zipfile.ZipFile]:
    """The checkpoint's zip archive, open; any damage to it a CheckpointError naming the file."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            if not any(info.filename == "meta.npy" for info in archive.infolist()):
                raise CheckpointError(f"{path} is not a tinyae checkpoint (no 'meta' entry)")
            yield archive
    except CheckpointError:
        raise
    except (ValueError, *ZIP_ERRORS) as error:
        raise CheckpointError(f"{path} is not a tinyae checkpoint: the file is damaged or not an .npz "
                              f"archive ({type(error).__name__}: {error})") from None


def load_meta(path: Path) -> dict:
    """The checkpoint's metadata only ({"format_version", "config", "epoch", "optimizer"}, the optimizer's
    arrays not read): at most ``META_LIMIT`` bytes are read, whatever the file holds."""
    path = Path(path)
    with _archive(path) as archive:
        raw = _read_member(archive, archive.getinfo("meta.npy"), path, _meta_allowed)
    return _read_meta(path, raw)


def _meta_allowed(name: str, shape: tuple, dtype: np.dtype) -> str | None:
    if dtype != np.uint8 or len(shape) != 1 or shape[0] > META_LIMIT:
        return f"must be at most {META_LIMIT} bytes of uint8 JSON text, found {dtype} of shape {shape}"
    return None


def load(path: Path, expected: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None) -> dict:
    """{"config", "epoch", "model": {name: array}, "optimizer": state dict}, all on the host (NumPy).

    ``expected`` (``expected_arrays(model.state_dict())``) is what the model needs: then the checkpoint
    must hold exactly those model arrays, with those shapes and dtypes, and the optimizer's arrays must
    each have a parameter's shape and dtype, at most three per parameter. Every member's .npy header is
    read and checked before its data, so a damaged or hostile file is refused before anything large is
    allocated; no member is pickled; the metadata is at most ``META_LIMIT`` bytes of JSON.
    """
    path = Path(path)
    shapes = set() if expected is None else {(tuple(shape), np.dtype(dtype))
                                             for shape, dtype in expected.values()}

    def allowed(name: str, shape: tuple, dtype: np.dtype) -> str | None:
        if name == "meta":
            return _meta_allowed(name, shape, dtype)
        if expected is None:
            return None
        if name.startswith("model/") and name[len("model/"):] in expected:
            want = expected[name[len("model/"):]]
            if (tuple(shape), dtype) != (tuple(want[0]), np.dtype(want[1])):
                return (f"has shape {shape} and dtype {dtype}; the model needs shape {tuple(want[0])} and "
                        f"dtype {np.dtype(want[1])}")
            return None
        if name.startswith("state/"):
            if (tuple(shape), dtype) not in shapes:
                return f"(optimizer state) has shape {shape} and dtype {dtype}, which no parameter has"
            return None
        return "is not part of this model's checkpoint (unknown key)"

    with _archive(path) as archive:
        members = archive.infolist()
        if expected is not None:
            names = {info.filename[:-len(".npy")] for info in members}
            missing = sorted(name for name in expected if f"model/{name}" not in names)
            if missing:
                raise CheckpointError(f"{path} lacks model arrays the model needs: {', '.join(missing)}")
            states = sum(info.filename.startswith("state/") for info in members)
            if states > 3 * len(expected):
                raise CheckpointError(f"{path} holds {states} optimizer arrays; a model with "
                                      f"{len(expected)} parameters has at most {3 * len(expected)}")
        arrays = {}
        for info in members:
            if not info.filename.endswith(".npy") or info.filename[:-len(".npy")] in arrays:
                raise CheckpointError(f"{path}: unexpected member {info.filename!r} in the archive")
            arrays[info.filename[:-len(".npy")]] = _read_member(archive, info, path, allowed)
    meta = _read_meta(path, arrays.pop("meta"))
    model = {key[len("model/"):]: value for key, value in arrays.items() if key.startswith("model/")}
    try:
        optimizer = _unpack(meta["optimizer"], arrays)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as error:
        raise CheckpointError(f"{path} has damaged metadata: its optimizer state is malformed "
                              f"({type(error).__name__}: {error})") from None
    return {"config": meta["config"], "epoch": meta["epoch"], "model": model, "optimizer": optimizer}


def _read_meta(path: Path, raw: np.ndarray) -> dict:
    """The checkpoint's JSON metadata, checked: format version, an epoch count, a config object."""
    try:
        meta = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise CheckpointError(f"{path} has damaged metadata: not valid JSON text "
                              f"({type(error).__name__}: {str(error)[:100]})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} has damaged metadata: expected a JSON object, got "
                              f"{type(meta).__name__}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {meta.get('format_version')!r}; this tinyae "
                              f"reads format {FORMAT_VERSION}")
    missing = sorted({"config", "epoch", "optimizer"} - meta.keys())
    if missing:
        raise CheckpointError(f"{path} has damaged metadata: it lacks {', '.join(missing)}")
    epoch = meta["epoch"]
    if type(epoch) is not int or epoch < 0:
        raise CheckpointError(f"{path} has damaged metadata: epoch must be an integer >= 0, got {epoch!r}")
    if not isinstance(meta["config"], dict):
        raise CheckpointError(f"{path} has damaged metadata: config must be an object, got "
                              f"{str(meta['config'])[:80]!r}")
    return meta
