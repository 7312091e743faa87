"""Downloading over HTTP, from a server on 127.0.0.1 serving files made by the test: a verified file lands in
the cache, a corrupt one is never written, and a server that is down gets an error that says where to get
the files offline. The mirror is chosen as a user would: $TINYAE_FASHION_MNIST_URL."""

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from tinyae.data import DataNotFoundError, load_mnist, mnist
from tests.data.test_mnist import accept_files, gz, write_fashion


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no access log on stderr
        pass


@pytest.fixture
def server(tmp_path):
    """(the served folder, its base URL): an HTTP server on 127.0.0.1, on a free port, for this test."""
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}/fashion"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """An empty cache, no $TINYAE_DATA, and no public mirror: only the test's server."""
    monkeypatch.delenv("TINYAE_DATA", raising=False)
    monkeypatch.delenv("TINYAE_MNIST_URL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for dataset in mnist.DATASETS:
        monkeypatch.setitem(mnist.MIRRORS, dataset, ())
    return tmp_path / "cache" / "tinyae" / "fashion-mnist"


def test_download_over_http_verifies_and_caches(server, isolated, monkeypatch):
    folder, url = server
    expected = write_fashion(folder / "fashion", "test", 5, compress=True)
    accept_files(monkeypatch, folder / "fashion")
    monkeypatch.setenv("TINYAE_FASHION_MNIST_URL", url)  # without the trailing slash: added
    images, labels = load_mnist("test", dataset="fashion-mnist")
    np.testing.assert_array_equal(images, expected[0])
    np.testing.assert_array_equal(labels, expected[1])
    served = sorted(path.name for path in (folder / "fashion").iterdir())
    assert sorted(path.name for path in isolated.iterdir()) == served  # and no temporary file
    for name in served:
        assert (isolated / name).read_bytes() == (folder / "fashion" / name).read_bytes()


def test_a_corrupt_download_is_named_and_never_written(server, isolated, monkeypatch):
    folder, url = server
    write_fashion(folder / "fashion", "test", 5, compress=True)
    accept_files(monkeypatch, folder / "fashion")
    images = folder / "fashion" / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(mnist.idx.decompress(images.read_bytes(), images))
    raw[-1] ^= 0xFF  # one pixel changed: the structure is right, the MD5 is not
    images.write_bytes(gz(bytes(raw)))
    monkeypatch.setenv("TINYAE_FASHION_MNIST_URL", url + "/")
    with pytest.raises(DataNotFoundError) as error:
        load_mnist("test", dataset="fashion-mnist")
    failure = next(line for line in str(error.value).splitlines() if "t10k-images-idx3-ubyte.gz:" in line)
    assert f"{url}/t10k-images-idx3-ubyte.gz" in failure
    assert "checksum mismatch for fashion-mnist t10k-images-idx3-ubyte: MD5 of the uncompressed bytes" in failure
    assert [path.name for path in isolated.iterdir()] == ["t10k-labels-idx1-ubyte.gz"]  # the good one only


def test_a_server_that_is_down_gets_the_offline_hint(server, monkeypatch):
    _, url = server
    monkeypatch.setenv("TINYAE_FASHION_MNIST_URL", url.replace("/fashion", "/nothing-here"))
    with pytest.raises(DataNotFoundError) as error:
        load_mnist("test", dataset="fashion-mnist")
    message = str(error.value)
    assert "nothing-here/t10k-images-idx3-ubyte.gz: HTTP Error 404" in message
    assert "sudo apt install dataset-fashion-mnist, then --data-dir /usr/share/datasets/fashion-mnist" in message


def test_no_server_at_all_gets_the_offline_hint(monkeypatch):
    monkeypatch.setenv("TINYAE_FASHION_MNIST_URL", "http://127.0.0.1:9/fashion/")  # the discard port
    with pytest.raises(DataNotFoundError) as error:
        load_mnist("test", dataset="fashion-mnist")
    message = str(error.value)
    assert "http://127.0.0.1:9/fashion/t10k-images-idx3-ubyte.gz: <urlopen error" in message
    assert message.count("127.0.0.1:9") == 1  # an unreachable mirror is not tried again for the next file
    assert "sudo apt install dataset-fashion-mnist" in message and "git clone" in message


def test_own_mirror_comes_before_the_public_ones(monkeypatch):
    monkeypatch.setitem(mnist.MIRRORS, "mnist", ("https://public.example/mnist/",))
    assert mnist.mirrors("mnist") == ("https://public.example/mnist/",)
    monkeypatch.setenv("TINYAE_MNIST_URL", "http://10.0.0.1/mnist")
    assert mnist.mirrors("mnist") == ("http://10.0.0.1/mnist/", "https://public.example/mnist/")
    assert mnist.mirrors("fashion-mnist") == ()
