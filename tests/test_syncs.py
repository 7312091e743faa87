"""Host synchronisations: a training step of every model makes none, on the strict backend that counts them.

On a GPU each read of a device array (``float(loss)``, ``bool(...)``, ``.item()``, a boolean mask) makes the
host wait until the GPU has finished everything queued, so a step that reads one runs at the speed of
its slowest kernel launch. The trainer reads the loss only every ``sync_every`` steps (25 on CuPy).
``tinyae.backend.strict.count_syncs`` records each read that CuPy would make. These tests use strict, and
run once, in the strict run of the suite (the numpy backend has no device to wait for).
"""

import numpy as np
import pytest

import tinyae
from tinyae import backend
from tinyae.app import evaluate, train
from tinyae.backend import strict
from tinyae.data import Batches
from tinyae.models import VAE
from tests.conftest import BACKEND

MODEL_CONFIGS = {
    "ae": ("ae", {"hidden": 16, "latent_dim": 4}),
    "sparse-ae l1": ("sparse-ae", {"hidden": 16, "latent_dim": 4, "penalty": "l1"}),
    "sparse-ae kl": ("sparse-ae", {"hidden": 16, "latent_dim": 4, "penalty": "kl"}),
    "denoising-ae gaussian": ("denoising-ae", {"hidden": 16, "latent_dim": 4, "noise": "gaussian"}),
    "denoising-ae mask": ("denoising-ae", {"hidden": 16, "latent_dim": 4, "noise": "mask"}),
    "vae bernoulli": ("vae", {"hidden": 16, "latent_dim": 4, "likelihood": "bernoulli"}),
    "vae gaussian": ("vae", {"hidden": 16, "latent_dim": 4, "likelihood": "gaussian"}),
    "conv-ae transpose": ("conv-ae", {"latent_dim": 4, "decoder": "transpose"}),
    "conv-ae upsample": ("conv-ae", {"latent_dim": 4, "decoder": "upsample"}),
    "conv-vae": ("conv-vae", {"latent_dim": 4}),
}
pytestmark = pytest.mark.skipif(BACKEND != "strict", reason="run once, in the strict run of the suite: the "
                                "tests use strict whatever the backend, the numpy run would repeat them")

IMAGES, BATCH_SIZE, SYNC_EVERY = 20, 4, 3  # 5 steps an epoch: progress read after steps 3 and 5


@pytest.fixture
def trainer(monkeypatch, tmp_path, request):
    """A Trainer on strict for the model ``request.param`` names, on random images (no MNIST to load)."""
    model, model_config = MODEL_CONFIGS[request.param]
    images = np.random.default_rng(0).integers(0, 256, size=(IMAGES, 28, 28), dtype=np.uint8)
    monkeypatch.setattr(train, "load_mnist", lambda *where: (images, np.arange(IMAGES) % 10))
    config = {**train.default_config(), "model": model, "model_config": model_config, "backend": "strict",
              "batch_size": BATCH_SIZE, "binarize": model != "vae", "kl_warmup": 1}
    trainer = train.Trainer(config, tmp_path, progress=False)
    trainer.sync_every = SYNC_EVERY
    backend.check_device_asserts()  # none left pending by earlier tests: reads here read this test's only
    return trainer


def _outside_the_trainer(syncs: strict.SyncCount) -> list[str]:
    return [event for event in syncs.events if "tinyae/app/train.py" not in event]


@pytest.mark.parametrize("trainer", list(MODEL_CONFIGS), indirect=True)
def test_a_training_step_makes_no_host_sync(trainer):
    """Loss, zero_grad, backward and Adam's step read nothing back from the device."""
    model, optimizer = trainer.model, trainer.optimizer
    for x, _ in zip(trainer.train_batches, range(2)):  # the first step, and one with Adam's state
        with strict.count_syncs() as syncs:
            total, _ = model.loss(x)
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
        assert syncs.events == []


@pytest.mark.parametrize("trainer", list(MODEL_CONFIGS), indirect=True)
def test_the_trainer_reads_only_every_sync_every_steps(trainer):
    """train_epoch reads the running loss after steps 3 and 5 (every SYNC_EVERY steps, and the last), and
    each part's epoch average at the end; nothing else, and nothing from the model, ops, optimizer or data.
    A progress read is the loss and, when some are pending, the device asserts (one transfer each): as
    many after 3 steps as after 2."""
    progress = []
    with strict.count_syncs() as syncs:
        averages = trainer.train_epoch(lambda step, loss: progress.append((step, syncs.count)))
    assert _outside_the_trainer(syncs) == []
    assert [step for step, _ in progress] == [3, 5]
    first_read, second_read = progress[0][1], progress[1][1] - progress[0][1]
    assert 1 <= first_read == second_read <= 2, syncs.events
    assert syncs.count == progress[1][1] + len(averages), syncs.events


@pytest.mark.parametrize("trainer", ["sparse-ae kl"], indirect=True)
def test_bad_input_found_on_the_device_stops_training_at_the_next_progress_read(trainer):
    """kl_sparsity's check of ρ̂ ∈ [0, 1] is a device assert: NaN weights make ρ̂ NaN in step 1, and the
    trainer's read after step 3 reports it (PyTorch's CUDA kernels would assert on the device likewise)."""
    trainer.model.encoder[0].weight.data[...] = float("nan")
    steps = []
    step = trainer.optimizer.step
    trainer.optimizer.step = lambda: steps.append(1) or step()
    with pytest.raises(ValueError, match=r"kl_sparsity: all elements of rho_hat must lie in \[0, 1\]"):
        trainer.train_epoch()
    assert len(steps) == SYNC_EVERY


@pytest.mark.parametrize("trainer", ["sparse-ae kl", "vae bernoulli"], indirect=True)
def test_evaluation_reads_once_however_many_batches(trainer):
    """The test-set losses are summed on the device and read at the end: as many reads for 2 batches as
    for 5 (one a batch before)."""
    images = np.random.default_rng(1).integers(0, 256, size=(IMAGES, 28, 28), dtype=np.uint8)
    reads = []
    for batch_size in (10, 4):
        with strict.count_syncs() as syncs:
            train.evaluate(trainer.model, Batches(images, batch_size=batch_size, backend_name="strict"))
        reads.append(syncs.count)
    assert reads[0] == reads[1] <= 4, reads  # each part once, and the pending device asserts


def test_the_vae_report_reads_once_however_many_batches():
    """tinyae eval's VAE report: its sums stay on the device until the end (on_batch excepted: it waits
    for the first batch once, to time the rest honestly)."""
    tinyae.set_backend("strict")
    model = VAE(hidden=8, latent_dim=2)
    images = np.random.default_rng(2).integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    reads = []
    for batch_size, on_batch in ((6, None), (3, None), (3, lambda done: None)):
        with strict.count_syncs() as syncs:
            evaluate.evaluate_vae(model, Batches(images, batch_size=batch_size), num_samples=2,
                                  on_batch=on_batch)
        reads.append(syncs.count)
    assert reads[0] == reads[1] and reads[2] == reads[1] + 1, reads
