"""The trainer: metrics, resume equivalence, the NaN guard, and refusing incompatible resumes."""

import json

import numpy as np
import pytest

from tinyae.app import checkpoint, figures
from tinyae.app.run import Run
from tinyae.app.train import (NonFiniteLossError, RunError, Trainer, check_resumable, default_config,
                              layer_gradient_norms, layers_of)
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


@pytest.mark.parametrize("log_grad_norms", [False, True], ids=["", "logging gradient norms"])
def test_resume_reproduces_an_uninterrupted_run(tmp_path, log_grad_norms):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    config = quick_config(log_grad_norms=log_grad_norms)
    Trainer(config, straight, progress=False).fit(2, log=lambda line: None)
    Trainer(config, interrupted, progress=False).fit(1, log=lambda line: None)
    resumed = Trainer(Run.open(interrupted).config, interrupted, progress=False)  # from the checkpoint
    assert resumed.epoch == 1
    resumed.fit(2, log=lambda line: None)
    assert without_seconds(read_metrics(interrupted)) == without_seconds(read_metrics(straight))
    assert all(("grad_norms" in record) == log_grad_norms for record in read_metrics(straight))
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


# Gradient norms per layer ------------------------------------------------------------------------------

def test_layers_are_the_modules_holding_parameters_in_state_dict_order():
    trainer_config = quick_config(model="conv-vae", model_config={"latent_dim": 2})
    from tinyae.app.train import build_model

    layers = layers_of(build_model(trainer_config))
    assert list(layers) == ["encoder.0", "encoder.2", "mu", "logvar", "decoder.0", "decoder.3", "decoder.5"]
    assert all(len(parameters) == 2 for parameters in layers.values())  # weight and bias


def host_norms(model) -> dict[str, float]:
    """Each layer's gradient norm by hand, in float64 on the host, from the state_dict names."""
    squares: dict[str, float] = {}
    for name, parameter in model.named_parameters():
        layer = name.rsplit(".", 1)[0]
        squares[layer] = squares.get(layer, 0.0) + float((to_numpy(parameter.grad).astype(np.float64) ** 2).sum())
    return {layer: value ** 0.5 for layer, value in squares.items()}


def test_logged_norms_are_the_mean_over_steps_of_the_norms_by_hand(tmp_path):
    trainer = Trainer(quick_config(log_grad_norms=True), tmp_path, progress=False)
    by_hand = []
    step = trainer.optimizer.step
    trainer.optimizer.step = lambda: by_hand.append(host_norms(trainer.model)) or step()
    averages = trainer.train_epoch()
    assert len(by_hand) == len(trainer.train_batches) == 4
    assert list(averages["grad_norms"]) == ["fc1", "fc21", "fc22", "fc3", "fc4"]
    for layer, logged in averages["grad_norms"].items():
        assert logged == pytest.approx(np.mean([norms[layer] for norms in by_hand]), rel=1e-5)
    assert len({round(norms["fc1"], 6) for norms in by_hand}) == 4  # each step's own gradient
    norms = layer_gradient_norms(layers_of(trainer.model))  # the last step's, still in .grad
    assert {k: float(v) for k, v in norms.items()} == pytest.approx(by_hand[-1], rel=1e-5)


def test_grad_norms_round_trip_through_metrics_and_are_plotted(tmp_path):
    history = Trainer(quick_config(log_grad_norms=True), tmp_path, progress=False).fit(2, log=lambda line: None)
    records = read_metrics(tmp_path)
    assert [record["grad_norms"] for record in records] == [record["grad_norms"] for record in history]
    assert all(isinstance(v, float) and v > 0 for record in records for v in record["grad_norms"].values())
    run = Run.open(tmp_path)
    assert run.config["log_grad_norms"] is True and run.metrics[1]["grad_norms"] == records[1]["grad_norms"]
    figure = figures.loss_figure(run.metrics)
    assert [axis.get_ylabel().split()[0] for axis in figure.axes] == ["loss", "kl", "recon", "‖∂L/∂θ‖₂"]
    gradient_axis = figure.axes[-1]
    assert gradient_axis.get_yscale() == "log"
    assert [line.get_label() for line in gradient_axis.get_lines()] == ["fc1", "fc21", "fc22", "fc3", "fc4"]
    np.testing.assert_array_equal(gradient_axis.get_lines()[0].get_ydata(),
                                  [record["grad_norms"]["fc1"] for record in records])
    path = run.loss_curves(tmp_path / "plot.png")
    assert path.stat().st_size > 2000


def test_a_run_without_grad_norms_plots_as_before(tmp_path):
    Trainer(quick_config(), tmp_path, progress=False).fit(1, log=lambda line: None)
    assert "grad_norms" not in read_metrics(tmp_path)[0]
    figure = figures.loss_figure(Run.open(tmp_path).metrics)
    assert [axis.get_ylabel().split()[0] for axis in figure.axes] == ["loss", "kl", "recon"]
