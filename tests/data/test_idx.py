"""The IDX reader: gzip or raw (told apart by content), and every structural error names file and problem."""

import gzip
import struct

import numpy as np
import pytest

from tinyae.data import DataError, read_idx
from tinyae.data.idx import parse_idx


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file holding ``array`` (stored big-endian)."""
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[type_code]
    header = struct.pack(f">HBB{array.ndim}I", 0, type_code, array.ndim, *array.shape)
    return header + np.asarray(array).astype(dtype).tobytes()


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(5, 4, 3), dtype=np.uint8)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("name", ["file", "file.gz", "file.idx"])
def test_reads_gzip_and_raw_whatever_the_name(tmp_path, images, compress, name):
    data = idx_bytes(images)
    (tmp_path / name).write_bytes(gzip.compress(data) if compress else data)
    result = read_idx(tmp_path / name, ndim=3)
    assert result.dtype == np.uint8 and result.shape == (5, 4, 3)
    np.testing.assert_array_equal(result, images)
    assert not result.flags.writeable


def test_labels_and_wider_types(tmp_path):
    labels = np.arange(7, dtype=np.uint8)
    (tmp_path / "labels").write_bytes(idx_bytes(labels))
    np.testing.assert_array_equal(read_idx(tmp_path / "labels", ndim=1), labels)
    values = np.array([[-3, 70000], [1, 2]], dtype=np.int32)
    (tmp_path / "ints").write_bytes(idx_bytes(values, 0x0C))
    result = read_idx(tmp_path / "ints")
    assert result.dtype == np.int32 and result.dtype.isnative
    np.testing.assert_array_equal(result, values)


def test_wrong_magic_says_found_and_expected(tmp_path, images):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(images[:, 0, 0]))  # a labels file (0x00000801) where images are expected
    with pytest.raises(DataError) as error:
        read_idx(path, ndim=3, type_code=0x08)
    message = str(error.value)
    assert str(path) in message and "0x00000801" in message and "0x00000803" in message
    assert isinstance(error.value, ValueError) and error.value.path == str(path)


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello, world")
    with pytest.raises(DataError, match="not an IDX file.*0x68656c6c"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_truncated_payload_says_bytes_expected_and_found(tmp_path, images, compress):
    data = idx_bytes(images)[:-7]
    path = tmp_path / "images"
    path.write_bytes(gzip.compress(data) if compress else data)
    expected = "truncated: dimensions 5x4x3 need 60 bytes after the header, found 53$"
    with pytest.raises(DataError, match=expected):
        read_idx(path, ndim=3)


@pytest.mark.parametrize("size", [0, 3, 9])
def test_truncated_header(tmp_path, images, size):
    path = tmp_path / "images"
    path.write_bytes(idx_bytes(images)[:size])
    with pytest.raises(DataError, match="truncated") as error:
        read_idx(path, ndim=3)
    assert str(path) in str(error.value)


def test_oversized_payload(tmp_path, images):
    path = tmp_path / "images"
    path.write_bytes(idx_bytes(images) + b"\0\0")
    with pytest.raises(DataError, match="too long: .* need 60 bytes .* found 62 .*2 extra"):
        read_idx(path, ndim=3)


def test_corrupt_gzip_stream(tmp_path, images):
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_bytes(images))[:-10])  # cut: the stream ends early
    with pytest.raises(DataError, match="corrupt gzip data") as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_parse_idx_names_its_source(images):
    with pytest.raises(DataError, match="^https://example.org/x.gz: truncated"):
        parse_idx(idx_bytes(images)[:-1], "https://example.org/x.gz")
