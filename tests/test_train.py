"""The trainer: metrics, resume equivalence, the NaN guard, and refusing incompatible resumes."""

import json

import numpy as np
import pytest

from tinyae.app import checkpoint
from tinyae.app.train import NonFiniteLossError, RunError, Trainer, check_resumable, default_config
from tests.conftest import BACKEND, to_numpy


def quick_config(**changes):
    config = default_config()
    config.update(model="vae", model_config={"hidden": 32, "latent_dim": 4}, limit=256, test_limit=128,
                  batch_size=64, backend=BACKEND, binarize=True)
    config.update(changes)
    return config


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_seconds(records):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in records]


def test_metrics_are_written_per_epoch(tmp_path):
    history = Trainer(quick_config(), tmp_path, progress=False).fit(2, log=lambda line: None)
    records = read_metrics(tmp_path)
    assert [r["epoch"] for r in records] == [1, 2] and without_seconds(records) == without_seconds(history)
    for record in records:
        assert {"train_loss", "test_loss", "train_recon", "train_kl", "test_recon", "test_kl", "seconds"} <= set(record)
        assert record["test_loss"] == pytest.approx(record["test_recon"] + record["test_kl"])
    assert records[1]["train_loss"] < records[0]["train_loss"]
    assert checkpoint.load(tmp_path / "checkpoint.npz")["epoch"] == 2


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    Trainer(quick_config(), straight, progress=False).fit(2, log=lambda line: None)
    Trainer(quick_config(), interrupted, progress=False).fit(1, log=lambda line: None)
    resumed = Trainer(quick_config(), interrupted, progress=False)  # continues from the checkpoint
    assert resumed.epoch == 1
    resumed.fit(2, log=lambda line: None)
    assert without_seconds(read_metrics(interrupted)) == without_seconds(read_metrics(straight))
    final = checkpoint.load(straight / "checkpoint.npz")["model"]
    for name, array in resumed.model.state_dict().items():
        np.testing.assert_array_equal(to_numpy(array), final[name])


@pytest.mark.parametrize("sync_every", [1, 25], ids=["read every step", "read every 25 steps (GPU)"])
def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, sync_every):
    trainer = Trainer(quick_config(), tmp_path, progress=False)
    trainer.sync_every = sync_every  # the step named is the first bad one, however rarely the loss is read
    trainer.fit(1, log=lambda line: None)
    good = checkpoint.load(tmp_path / "checkpoint.npz")["model"]
    trainer.model.fc1.weight.data[0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, at step 1\b"):
        trainer.fit(2, log=lambda line: None)
    saved = checkpoint.load(tmp_path / "checkpoint.npz")
    assert saved["epoch"] == 1
    for name, array in saved["model"].items():
        np.testing.assert_array_equal(array, good[name])
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1]


def test_kl_warmup_weight_rises_linearly(tmp_path):
    trainer = Trainer(quick_config(kl_warmup=2), tmp_path, progress=False)
    steps = len(trainer.train_batches)
    assert trainer.kl_weight(0, 0) == 0.0
    assert trainer.kl_weight(1, 0) == pytest.approx(0.5)
    assert trainer.kl_weight(1, steps // 2) == pytest.approx(0.5 + 0.5 * (steps // 2) / steps)
    assert trainer.kl_weight(3, 0) == 1.0


def test_resume_with_another_architecture_is_refused():
    saved = {"model": "vae", "model_config": {"latent_dim": 20}}
    check_resumable(saved, {"model": "vae", "model_config": {"latent_dim": 20}})
    with pytest.raises(RunError, match="latent_dim"):
        check_resumable(saved, {"model": "vae", "model_config": {"latent_dim": 2}})
    with pytest.raises(RunError, match="model"):
        check_resumable(saved, {"model": "ae", "model_config": {"latent_dim": 20}})
