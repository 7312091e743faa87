"""Checkpoints: round trip, atomic writes, and refusal of pickled or foreign files."""

import numpy as np
import pytest

from tinyae.app import checkpoint
from tinyae.app.checkpoint import CheckpointError


def sample_state():
    optimizer = {"state": {0: {"step": 3, "exp_avg": np.arange(4.0)}, 1: {"step": 3, "exp_avg": np.ones(2)}},
                 "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1]}]}
    return {"optimizer": optimizer, "data": {"bit_generator": "PCG64", "state": {"state": 2**100 + 7}}}


def test_round_trip(tmp_path):
    path = tmp_path / "checkpoint.npz"
    model = {"fc1.weight": np.ones((2, 3), np.float32), "fc1.bias": np.zeros(2, np.float32)}
    checkpoint.save(path, {"model": "vae", "seed": 0}, model, sample_state(), epoch=4)
    loaded = checkpoint.load(path)
    assert loaded["epoch"] == 4 and loaded["config"] == {"model": "vae", "seed": 0}
    assert loaded["model"].keys() == model.keys() and loaded["model"]["fc1.weight"].dtype == np.float32
    state = loaded["optimizer"]["optimizer"]["state"]
    assert list(state) == [0, 1] and state[0]["step"] == 3
    np.testing.assert_array_equal(state[0]["exp_avg"], np.arange(4.0))
    assert loaded["optimizer"]["data"]["state"]["state"] == 2**100 + 7
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_a_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    checkpoint.save(path, {"run": 1}, {"w": np.ones(2)}, sample_state(), epoch=1)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError):
        checkpoint.save(path, {"run": 1}, {"w": np.zeros(2)}, sample_state(), epoch=2)
    assert checkpoint.load(path)["epoch"] == 1
    assert list(tmp_path.iterdir()) == [path]


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, meta=np.array([{"code": "print('pwned')"}], dtype=object))
    with pytest.raises(CheckpointError, match="pickled"):
        checkpoint.load(path)


@pytest.mark.parametrize("content", [b"not a zip file", b""])
def test_garbage_is_refused_with_the_path(tmp_path, content):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="checkpoint.npz"):
        checkpoint.load(path)


def test_foreign_npz_and_other_versions_are_refused(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.ones(3))
    with pytest.raises(CheckpointError, match="not a tinyae checkpoint"):
        checkpoint.load(path)
    checkpoint.save(path, {}, {}, {}, epoch=0)
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["meta"] = np.frombuffer(b'{"format_version": 99}', dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="format 99"):
        checkpoint.load(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint.load(tmp_path / "nothing.npz")
