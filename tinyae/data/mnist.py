"""Finding, verifying and loading MNIST and Fashion-MNIST.

Where the files are looked for, in order (the first place that has a file wins; each place may hold
``train-images-idx3-ubyte`` or ``train-images-idx3-ubyte.gz``, and so on):

1. ``data_dir`` (the command line's ``--data-dir``), then ``data_dir/<dataset>``;
2. ``$TINYAE_DATA``, then ``$TINYAE_DATA/<dataset>``;
3. the copy bundled with the package, ``tinyae/data/files/<dataset>`` (MNIST only: package data, so
   ``pip install .`` and a built wheel train offline from any folder);
4. the user cache, ``$XDG_CACHE_HOME/tinyae/<dataset>`` or ``~/.cache/tinyae/<dataset>``.

If none has the file, it is downloaded into the cache from ``$TINYAE_MNIST_URL`` or
``$TINYAE_FASHION_MNIST_URL`` where set (a mirror of your own), then from the public mirrors
(``MIRRORS``); it is verified before it is written, and written atomically (a temporary file, then
``os.replace``). Without a network, ``DataNotFoundError`` lists every place looked and every mirror tried,
and says where to get the files offline.

Every file is verified before use: its IDX structure (``idx.parse_idx``) and the MD5 of its uncompressed
bytes, so a gzipped and a raw copy of the same file both pass and nothing trains on bad data. A file that
is found but wrong raises ``DataError``: it is never skipped in favour of the next place.

Fashion-MNIST checksums: the Fashion-MNIST project (github.com/zalandoresearch/fashion-mnist, README)
publishes MD5s of its *gzipped* files only (train-images 8d4fb7e6c68d591d4c3dfef9ec88bf0d, ...). Those
depend on the compressor, and Debian's ``dataset-fashion-mnist`` package (which installs the four files in
``/usr/share/datasets/fashion-mnist``) ships recompressed copies whose gzip MD5s differ. The MD5s below are
of the *uncompressed* files, computed from that package, and they equal the uncompressed MD5s that other
public projects record for the official files (listed beside the official gzip MD5s in their loaders). So
Fashion-MNIST is verified by checksum, as MNIST is, and not by structure only.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
from http.client import HTTPException
from pathlib import Path

import numpy as np

from . import idx
from .idx import DataError

DATASETS = ("mnist", "fashion-mnist")
SPLITS = {"train": "train", "test": "t10k"}

# MD5 of the uncompressed IDX files.
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

# Public base URLs tried in order; a file is fetched as base + name + ".gz".
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),  # the project's own
}
# The environment variable naming a mirror of your own, tried first (a base URL, as in MIRRORS).
MIRROR_VARIABLES = {"mnist": "TINYAE_MNIST_URL", "fashion-mnist": "TINYAE_FASHION_MNIST_URL"}
DOWNLOAD_TIMEOUT_S = 60

# The largest file of each kind: 60,000 images of 28x28 (or labels) and the IDX header. A header that
# declares more is refused before its payload is read or decompressed (idx.read_stream).
MAX_BYTES = {"images": 16 + 60_000 * 28 * 28, "labels": 8 + 60_000}


# The parent of the bundled <dataset> folders: package data beside this module.
BUNDLED_ROOT = Path(__file__).resolve().parent / "files"

# Where to get the files without tinyae's download: commands that work, then the folder to pass.
OFFLINE_HINTS = {
    "mnist": (
        "Offline? Reinstall tinyae (pip install . in its repository; the package bundles MNIST), or copy the "
        "four files (gzipped or not) into a folder and pass it as --data-dir."
    ),
    "fashion-mnist": (
        "Offline? On Debian or Ubuntu: sudo apt install dataset-fashion-mnist, then --data-dir "
        "/usr/share/datasets/fashion-mnist. Elsewhere: git clone https://github.com/zalandoresearch/fashion-mnist, "
        "then --data-dir fashion-mnist/data/fashion."
    ),
}


def mirrors(dataset: str) -> tuple[str, ...]:
    """The base URLs to download ``dataset`` from: ``$TINYAE_<DATASET>_URL`` where set, then ``MIRRORS``."""
    own = os.environ.get(MIRROR_VARIABLES[dataset], "").strip()
    return ((own if own.endswith("/") else own + "/",) if own else ()) + MIRRORS[dataset]


class DataNotFoundError(FileNotFoundError):
    """No place holds a data file and it could not be downloaded; the message lists every place tried."""


def cache_dir(dataset: str = "mnist") -> Path:
    """The per-user cache folder of ``dataset``: ``$XDG_CACHE_HOME/tinyae/<dataset>`` or ``~/.cache/...``."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "tinyae" / dataset


def search_path(dataset: str = "mnist", data_dir: str | Path | None = None) -> list[tuple[str, Path | None]]:
    """The places looked in, in order, as (description, folder); folder is None where a setting is unset."""
    places: list[tuple[str, Path | None]] = []
    for label, root in (("data_dir (--data-dir)", data_dir), ("$TINYAE_DATA", os.environ.get("TINYAE_DATA"))):
        if root is None or str(root) == "":
            places.append((f"{label}: not set", None))
        else:
            root = Path(root).expanduser()
            places += [(label, root), (label, root / dataset)]
    places.append(("bundled copy", BUNDLED_ROOT / dataset))
    places.append(("user cache", cache_dir(dataset)))
    return places


def find_file(name: str, dataset: str = "mnist", data_dir: str | Path | None = None) -> Path | None:
    """The first existing ``name`` or ``name.gz`` along ``search_path``; None if there is none."""
    for _, folder in search_path(dataset, data_dir):
        if folder is None:
            continue
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def max_size(name: str) -> int:
    """The most bytes a file called ``name`` (``...-images-...`` or ``...-labels-...``) may hold."""
    return MAX_BYTES["images" if "images" in name else "labels"]


def verify(raw: bytes, source: str | Path, name: str, dataset: str) -> np.ndarray:
    """Check the uncompressed bytes of file ``name`` of ``dataset``: IDX structure, then MD5."""
    array = idx.parse_idx(raw, source, ndim=3 if "images" in name else 1, type_code=0x08)
    expected = CHECKSUMS[dataset][name]
    found = hashlib.md5(raw, usedforsecurity=False).hexdigest()
    if found != expected:
        raise DataError(
            source,
            f"checksum mismatch for {dataset} {name}: MD5 of the uncompressed bytes is {found}, expected "
            f"{expected}. The file is corrupt or not this dataset's; delete or replace it.",
        )
    return array


def missing_from(folder: str | Path, split: str, dataset: str = "mnist") -> list[str]:
    """The files of ``split`` that neither ``folder`` nor ``folder/<dataset>`` holds (raw or gzipped): the
    command line asks this of its --data-dir, which must hold the files, not fall back to another copy."""
    folder = Path(folder).expanduser()
    names = [f"{SPLITS[split]}-images-idx3-ubyte", f"{SPLITS[split]}-labels-idx1-ubyte"]
    return [name for name in names if not any((place / candidate).is_file()
                                              for place in (folder, folder / dataset)
                                              for candidate in (name, f"{name}.gz"))]


def _download(name: str, dataset: str, failures: list[str], unreachable: set[str]) -> Path | None:
    """Fetch ``name`` into the cache from the first mirror that serves a verified copy; None if none does.

    Failures are appended to ``failures``; a mirror that cannot be reached is added to ``unreachable`` and
    not tried again for the next file (offline, each try could wait for the timeout).
    """
    target_dir = cache_dir(dataset)
    for base in mirrors(dataset):
        if base in unreachable:
            continue
        url = f"{base}{name}.gz"
        try:
            print(f"tinyae: downloading {url}", file=sys.stderr)
            try:
                with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                    payload = response.read()
            except (OSError, HTTPException):
                unreachable.add(base)
                raise
            verify(idx.decompress(payload, url, max_size(name)), url, name, dataset)
            target_dir.mkdir(parents=True, exist_ok=True)
            target = target_dir / (f"{name}.gz" if payload.startswith(idx.GZIP_MAGIC) else name)
            _write_atomically(target, payload)
            return target
        except (OSError, HTTPException, ValueError) as error:  # URLError: OSError; DataError: ValueError
            failures.append(f"{url}: {error}")
    return None


def _write_atomically(target: Path, payload: bytes) -> None:
    """Write ``payload`` to a temporary file beside ``target``, then rename it: no reader sees half a file."""
    handle = tempfile.NamedTemporaryFile(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False
    )
    try:
        with handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def _not_found(missing: list[str], dataset: str, data_dir, failures: list[str]) -> DataNotFoundError:
    files = ", ".join(f"{name}[.gz]" for name in missing)
    lines = [f"{dataset}: cannot find {files}. Looked in, in order:"]
    for number, (label, folder) in enumerate(search_path(dataset, data_dir), 1):
        lines.append(f"  {number}. {folder} ({label})" if folder is not None else f"  {number}. {label}")
    if mirrors(dataset):
        lines.append("and the download failed from every mirror:")
        lines += [f"  - {failure}" for failure in failures] or [f"  - {base}" for base in mirrors(dataset)]
    lines.append(OFFLINE_HINTS[dataset])
    return DataNotFoundError("\n".join(lines))


def load_mnist(
    split: str = "train", dataset: str = "mnist", data_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The verified images and labels of one split of MNIST or Fashion-MNIST.

    ``split``: ``"train"`` (60,000 images) or ``"test"`` (10,000). ``dataset``: ``"mnist"`` or
    ``"fashion-mnist"``. ``data_dir``: a folder tried before every other place (see the module docstring).
    Returns ``images`` (N, 28, 28) and ``labels`` (N,), both uint8 and read-only (copy them to modify).
    Raises ``DataError`` for a file that is found but wrong, ``DataNotFoundError`` when a file is nowhere.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    names = [f"{SPLITS[split]}-images-idx3-ubyte", f"{SPLITS[split]}-labels-idx1-ubyte"]
    paths = {name: find_file(name, dataset, data_dir) for name in names}
    failures: list[str] = []
    unreachable: set[str] = set()
    for name in names:
        if paths[name] is None:
            paths[name] = _download(name, dataset, failures, unreachable)
    missing = [name for name in names if paths[name] is None]
    if missing:
        raise _not_found(missing, dataset, data_dir, failures)

    images, labels = (verify(idx.read_bytes(paths[name], max_size(name)), paths[name], name, dataset)
                      for name in names)
    return images, labels  # the checksums fix their shapes: (N, 28, 28) and (N,)
