"""Finding, downloading and verifying MNIST and Fashion-MNIST. Never touches the network: every test runs
with the mirrors pointed at file:// URLs, and with $TINYAE_DATA, the cache and $HOME in tmp_path."""

import gzip
import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from tinyae.data import DataError, DataNotFoundError, load_mnist, mnist

BUNDLED = mnist.BUNDLED_ROOT / "mnist"
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No $TINYAE_DATA, an empty cache and home, and mirrors that cannot be reached."""
    monkeypatch.delenv("TINYAE_DATA", raising=False)
    for variable in mnist.MIRROR_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for dataset in mnist.DATASETS:
        monkeypatch.setitem(mnist.MIRRORS, dataset, ())
    monkeypatch.setitem(mnist.MIRRORS, "mnist", ((tmp_path / "no-mirror").as_uri() + "/",))


@pytest.fixture
def no_bundle(tmp_path, monkeypatch):
    """Pretend the repository has no bundled copy."""
    monkeypatch.setattr(mnist, "BUNDLED_ROOT", tmp_path / "no-bundle")


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1)  # fast; any level reads the same


def raw(name: str) -> bytes:
    return gzip.decompress((BUNDLED / f"{name}.gz").read_bytes())


def test_bundled_files_match_the_published_checksums():
    for name, expected in mnist.CHECKSUMS["mnist"].items():
        assert hashlib.md5(raw(name)).hexdigest() == expected, name


def test_load_mnist_both_splits():
    images, labels = load_mnist("test")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert images.dtype == labels.dtype == np.uint8
    assert labels[:5].tolist() == [7, 2, 1, 0, 4] and set(np.unique(labels)) == set(range(10))
    images, labels = load_mnist("train")
    assert images.shape == (60000, 28, 28) and labels.shape == (60000,)
    assert labels[:5].tolist() == [5, 0, 4, 1, 9]


def test_unknown_split_or_dataset():
    with pytest.raises(ValueError, match="unknown split 'valid'; expected one of train, test"):
        load_mnist("valid")
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; expected one of mnist, fashion-mnist"):
        load_mnist("test", dataset="cifar")


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_raw_and_gzip_copies_in_data_dir(tmp_path, compress, no_bundle):
    for name in TEST_FILES:
        data = raw(name)
        (tmp_path / (f"{name}.gz" if compress else name)).write_bytes(gz(data) if compress else data)
    images, labels = load_mnist("test", data_dir=tmp_path)
    assert images.shape == (10000, 28, 28) and labels[:3].tolist() == [7, 2, 1]


def test_one_changed_byte_is_a_checksum_error_naming_the_file(tmp_path):
    data = bytearray(raw("t10k-labels-idx1-ubyte"))
    data[5000] = (data[5000] + 1) % 10  # still a valid IDX file, one label changed
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as error:
        load_mnist("test", data_dir=tmp_path)  # found first: never skipped in favour of the good bundled copy
    message = str(error.value)
    assert message.startswith(str(path)) and "checksum mismatch" in message
    assert mnist.CHECKSUMS["mnist"]["t10k-labels-idx1-ubyte"] in message
    assert hashlib.md5(bytes(data)).hexdigest() in message


def test_truncated_file(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gz(raw("t10k-images-idx3-ubyte")[:-784]))  # one image short
    with pytest.raises(DataError, match="truncated: dimensions 10000x28x28 need 7840000 bytes .* 7839216"):
        load_mnist("test", data_dir=tmp_path)


def test_wrong_magic(tmp_path):
    shutil.copy(BUNDLED / "t10k-labels-idx1-ubyte.gz", tmp_path / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match="ubyte.gz: wrong magic number 0x00000801, expected 0x00000803"):
        load_mnist("test", data_dir=tmp_path)


def make_places(tmp_path, monkeypatch):
    """Four folders holding a dummy t10k-labels file, wired as data_dir, $TINYAE_DATA, bundle and cache."""
    places = {
        "data_dir": tmp_path / "data_dir" / "mnist",
        "env": tmp_path / "env" / "mnist",
        "bundled": tmp_path / "bundled" / "mnist",
        "cache": tmp_path / "xdg" / "tinyae" / "mnist",
    }
    for folder in places.values():
        folder.mkdir(parents=True)
        (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    monkeypatch.setenv("TINYAE_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(mnist, "BUNDLED_ROOT", tmp_path / "bundled")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return places


def test_lookup_order(tmp_path, monkeypatch):
    places = make_places(tmp_path, monkeypatch)
    data_dir = tmp_path / "data_dir"
    for place in ("data_dir", "env", "bundled", "cache"):
        found = mnist.find_file("t10k-labels-idx1-ubyte", "mnist", data_dir)
        assert found == places[place] / "t10k-labels-idx1-ubyte.gz", place
        shutil.rmtree(places[place])
    assert mnist.find_file("t10k-labels-idx1-ubyte", "mnist", data_dir) is None


def test_a_folder_beats_its_dataset_subfolder_and_raw_beats_gzip(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"")
    name = "t10k-labels-idx1-ubyte"
    assert mnist.find_file(name, "mnist", tmp_path) == tmp_path / "mnist" / name
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    assert mnist.find_file(name, "mnist", tmp_path) == tmp_path / f"{name}.gz"
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"")
    assert mnist.find_file(name, "mnist", tmp_path) == tmp_path / name


def test_cache_location_follows_xdg_then_home(tmp_path, monkeypatch):
    assert mnist.cache_dir("mnist") == tmp_path / "cache" / "tinyae" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert mnist.cache_dir("fashion-mnist") == tmp_path / "home" / ".cache" / "tinyae" / "fashion-mnist"


def test_bundled_copy_is_package_data():
    import tinyae

    assert mnist.BUNDLED_ROOT == Path(tinyae.__file__).resolve().parent / "data" / "files"
    assert mnist.find_file("t10k-labels-idx1-ubyte") == BUNDLED / "t10k-labels-idx1-ubyte.gz"


def mirror(tmp_path, name: str, files: dict[str, bytes]) -> str:
    folder = tmp_path / name
    folder.mkdir()
    for file_name, data in files.items():
        (folder / file_name).write_bytes(data)
    return folder.as_uri() + "/"


def test_download_into_the_cache_from_the_first_good_mirror(tmp_path, monkeypatch, no_bundle):
    good = {f"{name}.gz": (BUNDLED / f"{name}.gz").read_bytes() for name in TEST_FILES}
    corrupt = {name: gz(raw(name.removesuffix(".gz"))[:-1]) for name in good}
    mirrors = (
        (tmp_path / "unreachable").as_uri() + "/",
        mirror(tmp_path, "corrupt", corrupt),
        mirror(tmp_path, "good", good),
    )
    monkeypatch.setitem(mnist.MIRRORS, "mnist", mirrors)
    images, labels = load_mnist("test")
    assert images.shape == (10000, 28, 28) and labels[:3].tolist() == [7, 2, 1]
    cache = tmp_path / "cache" / "tinyae" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(good)  # no temporary files left behind
    for name, data in good.items():
        assert (cache / name).read_bytes() == data

    monkeypatch.setitem(mnist.MIRRORS, "mnist", ())  # the second time, the cache serves
    assert load_mnist("test")[1][:3].tolist() == [7, 2, 1]


def test_bad_downloads_are_never_written(tmp_path, monkeypatch, no_bundle):
    bad = {f"{name}.gz": gz(raw(name)[:-1]) for name in TEST_FILES}
    monkeypatch.setitem(mnist.MIRRORS, "mnist", (mirror(tmp_path, "bad", bad),))
    with pytest.raises(DataNotFoundError, match="truncated"):
        load_mnist("test")
    cache = tmp_path / "cache" / "tinyae" / "mnist"
    assert not cache.exists() or not any(cache.iterdir())


def test_offline_error_lists_every_place_and_mirror(tmp_path, monkeypatch, no_bundle):
    monkeypatch.setenv("TINYAE_DATA", str(tmp_path / "env"))
    mirrors = ((tmp_path / "mirror-1").as_uri() + "/", (tmp_path / "mirror-2").as_uri() + "/")
    monkeypatch.setitem(mnist.MIRRORS, "mnist", mirrors)
    with pytest.raises(DataNotFoundError) as error:
        load_mnist("test", data_dir=tmp_path / "mine")
    message = str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    assert "t10k-images-idx3-ubyte[.gz]" in message and "t10k-labels-idx1-ubyte[.gz]" in message
    places = [tmp_path / "mine", tmp_path / "mine" / "mnist", tmp_path / "env", tmp_path / "env" / "mnist",
              tmp_path / "no-bundle" / "mnist", tmp_path / "cache" / "tinyae" / "mnist"]
    positions = [message.index(f"{place} (") for place in places]
    assert positions == sorted(positions)  # listed in lookup order
    for base in mirrors:  # each mirror tried once: one unreachable is not tried again for the next file
        assert message.count(base) == 1 and f"{base}t10k-images-idx3-ubyte.gz" in message


def test_offline_error_says_what_is_unset(no_bundle):
    with pytest.raises(DataNotFoundError) as error:
        load_mnist("test")
    message = str(error.value)
    assert "data_dir (--data-dir): not set" in message and "$TINYAE_DATA: not set" in message


# Fashion-MNIST -----------------------------------------------------------------------------------------

def write_fashion(folder: Path, split: str, count: int, compress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Tiny synthetic Fashion-MNIST files (an IDX header and random pixels) for one split."""
    rng = np.random.default_rng(count)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    prefix = mnist.SPLITS[split]
    folder.mkdir(parents=True, exist_ok=True)
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        data = struct.pack(f">HBB{array.ndim}I", 0, 8, array.ndim, *array.shape) + array.tobytes()
        name = f"{prefix}-{kind}-ubyte"
        (folder / (f"{name}.gz" if compress else name)).write_bytes(gz(data) if compress else data)
    return images, labels


def accept_files(monkeypatch, folder: Path) -> None:
    """Make the synthetic files' checksums the expected ones."""
    for path in folder.iterdir():
        name = path.name.removesuffix(".gz")
        data = path.read_bytes()
        data = gzip.decompress(data) if path.suffix == ".gz" else data
        monkeypatch.setitem(mnist.CHECKSUMS["fashion-mnist"], name, hashlib.md5(data).hexdigest())


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_fashion_mnist_from_data_dir(tmp_path, monkeypatch, compress):
    folder = tmp_path / "fashion"
    expected = {split: write_fashion(folder, split, n, compress) for split, n in (("train", 6), ("test", 3))}
    accept_files(monkeypatch, tmp_path / "fashion")
    for split in ("train", "test"):
        images, labels = load_mnist(split, dataset="fashion-mnist", data_dir=tmp_path / "fashion")
        np.testing.assert_array_equal(images, expected[split][0])
        np.testing.assert_array_equal(labels, expected[split][1])


def test_fashion_mnist_is_verified_by_checksum(tmp_path):
    write_fashion(tmp_path, "test", 3, compress=True)
    with pytest.raises(DataError, match="checksum mismatch for fashion-mnist t10k-images-idx3-ubyte"):
        load_mnist("test", dataset="fashion-mnist", data_dir=tmp_path)


def test_fashion_mnist_without_mirrors_says_where_to_get_it(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        load_mnist("test", dataset="fashion-mnist", data_dir=tmp_path)
    message = str(error.value)
    assert f"{tmp_path / 'fashion-mnist'} (" in message and "mirror" not in message
    assert "sudo apt install dataset-fashion-mnist, then --data-dir /usr/share/datasets/fashion-mnist" in message


DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_test_split():
    images, labels = load_mnist("test", dataset="fashion-mnist", data_dir=DEBIAN_FASHION)
    assert images.shape == (10000, 28, 28) and labels[:5].tolist() == [9, 2, 1, 1, 6]
