"""The IDX file format of MNIST and Fashion-MNIST, gzipped or raw.

An IDX file is a header and a payload. The header is a 4-byte magic number, then one big-endian uint32 per
dimension; the payload is the array in C order, big-endian::

    magic = 0x00 0x00 <type code> <number of dimensions>
    0x00000801   labels: uint8, 1 dimension  (N,)
    0x00000803   images: uint8, 3 dimensions (N, 28, 28)

Files may be gzip-compressed; that is recognized by the gzip magic bytes (1f 8b), never by the file name.
Anything wrong (not gzip though it looks like it, bad magic number, a payload shorter or longer than the
dimensions say) raises ``DataError``, which names the file and what is wrong.
"""

from __future__ import annotations

import gzip
import io
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> big-endian dtype.
TYPE_CODES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DataError(ValueError):
    """A data file that is wrong (format, size or checksum); the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


EXTRA_LIMIT = 1 << 16  # bytes past the declared payload read to report how many there are


def read_bytes(path: str | Path, max_size: int | None = None) -> bytes:
    """The content of ``path``, decompressed when it starts with the gzip magic bytes; see ``read_stream``."""
    with open(path, "rb") as file:
        return read_stream(file, path, max_size)


def decompress(data: bytes, source: str | Path, max_size: int | None = None) -> bytes:
    """``data`` gunzipped if it is gzip (by its magic bytes), else as is; ``source`` names it in errors."""
    return read_stream(io.BytesIO(data), source, max_size)


def read_stream(file: BinaryIO, source: str | Path, max_size: int | None = None) -> bytes:
    """The bytes of ``file`` (gunzipped if gzip), read no further than its IDX header says they go.

    The header is read first; the payload it declares is then read exactly, and at most ``EXTRA_LIMIT``
    bytes past it (so ``parse_idx`` can say how many extra there are; a stream that goes on beyond them is
    refused here). A header declaring more than
    ``max_size`` bytes in all is refused before anything is read. So a gzip bomb costs memory for what its
    header declares, never for what it would decompress to. A stream that is not IDX is returned as read
    (at most ``EXTRA_LIMIT`` bytes), for ``parse_idx`` to name what is wrong.
    """
    stream = gzip.GzipFile(fileobj=file, mode="rb") if file.read(2) == GZIP_MAGIC else file
    file.seek(0)
    try:
        head = stream.read(4)
        size = len(head)
        if len(head) == 4 and head[:2] == b"\0\0" and head[2] in TYPE_CODES and head[3] > 0:
            dims = stream.read(4 * head[3])
            head += dims
            if len(dims) == 4 * head[3]:
                shape = struct.unpack(f">{head[3]}I", dims)
                size = len(head) + math.prod(shape) * TYPE_CODES[head[2]].itemsize
                if max_size is not None and size > max_size:
                    raise DataError(source, f"its header declares dimensions {'x'.join(map(str, shape))} "
                                            f"({size} bytes), more than the {max_size} bytes expected here")
        data = head + stream.read(size - len(head) + EXTRA_LIMIT)
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError; a cut stream is an EOFError
        raise DataError(source, f"corrupt gzip data ({error or type(error).__name__})") from None
    if size > len(head) and len(data) == size + EXTRA_LIMIT:
        raise DataError(source, f"too long: dimensions {'x'.join(map(str, shape))} need {size - len(head)} "
                                f"bytes after the header, and more than {EXTRA_LIMIT} bytes follow them (not "
                                "read further)")
    return data


def describe_magic(type_code: int, ndim: int) -> str:
    dtype = TYPE_CODES.get(type_code)
    kind = dtype.name if dtype is not None else "unknown type"
    return f"0x{(type_code << 8) | ndim:08x} ({kind}, {ndim} dimension{'s' if ndim != 1 else ''})"


def parse_idx(
    data: bytes, source: str | Path, ndim: int | None = None, type_code: int | None = None
) -> np.ndarray:
    """The array stored in the uncompressed IDX bytes ``data``.

    ``ndim`` and ``type_code`` (e.g. 3 and 0x08 for MNIST images) pin the expected magic number; without
    them any valid IDX header is accepted. The result is a read-only view of ``data`` in native byte order
    for uint8 (a converted copy for wider types). ``source`` names the file in errors.
    """
    if len(data) < 4:
        raise DataError(source, f"truncated: {len(data)} bytes, too short for the 4-byte IDX magic number")
    zero, found_code, found_ndim = struct.unpack(">HBB", data[:4])
    magic = int.from_bytes(data[:4], "big")
    if ndim is not None or type_code is not None:
        want_code = 0x08 if type_code is None else type_code
        want_ndim = found_ndim if ndim is None else ndim
        if (zero, found_code, found_ndim) != (0, want_code, want_ndim):
            raise DataError(
                source,
                f"wrong magic number 0x{magic:08x}, expected {describe_magic(want_code, want_ndim)}"
                + (" (the file is gzip data inside gzip?)" if data.startswith(GZIP_MAGIC) else ""),
            )
    elif zero != 0 or found_code not in TYPE_CODES or found_ndim == 0:
        raise DataError(source, f"not an IDX file: magic number 0x{magic:08x} (expected 0x0000TTDD)")
    dtype = TYPE_CODES[found_code]

    header = 4 + 4 * found_ndim
    if len(data) < header:
        raise DataError(
            source,
            f"truncated header: expected {header} bytes for {found_ndim} dimensions, found {len(data)}",
        )
    shape = struct.unpack(f">{found_ndim}I", data[4:header])
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header
    dims = "x".join(map(str, shape))
    if found < expected:
        raise DataError(
            source, f"truncated: dimensions {dims} need {expected} bytes after the header, found {found}"
        )
    if found > expected:
        raise DataError(
            source,
            f"too long: dimensions {dims} need {expected} bytes after the header, found {found} "
            f"({found - expected} extra)",
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    if dtype.byteorder == ">":
        array = array.astype(dtype.newbyteorder("="))
        array.flags.writeable = False
    return array


def read_idx(path: str | Path, ndim: int | None = None, type_code: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or raw) into a read-only NumPy array; see ``parse_idx`` for the checks."""
    return parse_idx(read_bytes(path), path, ndim=ndim, type_code=type_code)
