"""tinyae.app.run.Run: repairing a folder left by a killed run, the write order, failed starts, Ctrl-C,
continuing with --out and --resume, and the Python API (tinyae.load_run)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinyae
from tinyae.app import run as run_module
from tinyae.app.cli import main
from tinyae.app.run import Run, RunError
from tinyae.app.train import NonFiniteLossError, Trainer, default_config
from tests.conftest import BACKEND

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--limit", "256", "--test-limit", "100", "--batch-size", "64", "--hidden", "32", "--latent-dim", "4",
         "--quiet"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TINYAE_TEST_KILL_AT", raising=False)
    if BACKEND == "strict":
        pytest.skip("the command offers the numpy and cupy backends")


def train(*args):
    return main(["train", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """A finished two-epoch run, copied by the tests that damage it."""
    folder = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "--epochs", "2", "--out", str(folder), *QUICK]) == 0
    return folder


@pytest.fixture
def damaged(two_epochs, tmp_path):
    """A copy of the two-epoch run, to damage."""
    copy = tmp_path / "run"
    shutil.copytree(two_epochs, copy)
    return copy


def lines(folder: Path) -> list[str]:
    return (folder / "metrics.jsonl").read_text().splitlines(keepends=True)


def test_a_torn_last_line_is_ignored_by_readers_and_dropped_by_a_writer(damaged, capsys):
    whole = (damaged / "metrics.jsonl").read_text()
    (damaged / "metrics.jsonl").write_text(whole + '{"epoch": 3, "train_lo')  # an append cut short
    assert [record["epoch"] for record in Run.open(damaged).metrics] == [1, 2]
    assert (damaged / "metrics.jsonl").read_text().endswith('"train_lo')  # a reader changes nothing
    assert main(["plot", str(damaged)]) == 0
    assert Path(capsys.readouterr().out.strip()).stat().st_size > 1000
    Run.open(damaged, writable=True)
    assert (damaged / "metrics.jsonl").read_text() == whole


def test_a_last_line_that_is_not_json_is_torn_but_one_in_the_middle_is_an_error(damaged):
    first, second = lines(damaged)
    (damaged / "metrics.jsonl").write_text(first + second[:20] + "\n")
    run = Run.open(damaged, writable=True)
    assert run.epoch == 2 and [record["epoch"] for record in run.metrics] == [1]
    assert lines(damaged) == [first]
    (damaged / "metrics.jsonl").write_text("{oops\n" + first)
    with pytest.raises(RunError, match=r"metrics.jsonl, line 1, is not JSON"):
        Run.open(damaged)


def test_metrics_ahead_of_the_checkpoint_are_dropped_by_write_then_rename(damaged, monkeypatch):
    first, second = lines(damaged)
    ahead = json.dumps({**json.loads(second), "epoch": 3}) + "\n"
    (damaged / "metrics.jsonl").write_text(first + second + ahead)
    assert [record["epoch"] for record in Run.open(damaged).metrics] == [1, 2]

    def killed(*args):
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(OSError, match="killed"):
        Run.open(damaged, writable=True)
    assert lines(damaged) == [first, second, ahead]  # never truncated in place
    assert (damaged / "metrics.jsonl.tmp").exists()
    monkeypatch.undo()
    Run.open(damaged, writable=True)
    assert lines(damaged) == [first, second]
    assert not (damaged / "metrics.jsonl.tmp").exists()


def test_stale_tmp_files_are_removed_by_a_writer_only(damaged):
    stale = [damaged / "checkpoint.npzab12.tmp", damaged / "config.json.tmp"]
    for path in stale:
        path.write_bytes(b"half a write")
    Run.open(damaged)
    assert all(path.exists() for path in stale)
    Run.open(damaged, writable=True)
    assert not any(path.exists() for path in stale)


def test_the_metrics_line_is_durable_before_its_checkpoint(tmp_path, monkeypatch):
    """fsync of metrics.jsonl, then of the checkpoint's temporary file, its rename, and the folder's fsync."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name the file descriptors")
    trainer = Trainer(quick_config(), tmp_path / "run", progress=False)
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{descriptor}")).name))
        real_fsync(descriptor)

    def replace(source, target):
        events.append(("replace", Path(target).name))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    trainer.fit(1, log=lambda line: None)
    names = [(kind, name if not name.endswith(".tmp") else "checkpoint tmp") for kind, name in events]
    assert names == [("fsync", "metrics.jsonl"), ("fsync", "run"), ("fsync", "checkpoint tmp"),
                     ("replace", "checkpoint.npz"), ("fsync", "run")]


def quick_config(**changes):
    config = default_config()
    config.update(model="vae", model_config={"hidden": 32, "latent_dim": 4}, limit=256, test_limit=100,
                  batch_size=64, backend="numpy")
    return {**config, **changes}


def test_a_run_without_a_checkpoint_starts_from_epoch_0_with_resume_and_out(tmp_path, capsys):
    for flags in (["--resume", "run"], ["--out", "run", *QUICK]):
        Run.create(tmp_path / "run", {**quick_config(), "epochs": 1})  # killed before its first checkpoint
        assert train("--epochs", "1", *flags, "--quiet") == 0
        output = capsys.readouterr().out
        assert "from the start (the run has no checkpoint yet)" in output
        assert Run.open(tmp_path / "run").epoch == 1 and len(lines(tmp_path / "run")) == 1
        shutil.rmtree(tmp_path / "run")


def test_out_continues_a_run_of_the_same_options_and_names_what_differs(two_epochs, capsys):
    assert train("--epochs", "2", "--out", two_epochs, *QUICK) == 0
    assert f"{two_epochs} already has 2 epochs (asked for 2); nothing to train" in capsys.readouterr().out
    assert train("--epochs", "2", "--out", two_epochs, *QUICK, "--lr", "0.01") == 1
    error = capsys.readouterr().err
    assert "lr: run has 0.001, asked for 0.01" in error and len(error.strip().splitlines()) == 1


def test_resume_with_no_more_epochs_trains_nothing(damaged, capsys):
    before = (damaged / "metrics.jsonl").read_text(), (damaged / "checkpoint.npz").read_bytes()
    assert train("--resume", damaged, "--epochs", "1") == 0
    assert f"{damaged} already has 2 epochs (asked for 1); nothing to train" in capsys.readouterr().out
    assert ((damaged / "metrics.jsonl").read_text(), (damaged / "checkpoint.npz").read_bytes()) == before


@pytest.mark.parametrize("options", [["--dataset", "fashion-mnist"], ["--backend", "cupy"]])
def test_a_failed_start_leaves_no_folder(tmp_path, monkeypatch, capsys, options):
    monkeypatch.setenv("TINYAE_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # Fashion-MNIST is never downloaded
    if options[1] == "cupy":
        try:
            tinyae.backend.module("cupy")
            pytest.skip("CuPy and a GPU are here")
        except RuntimeError:
            pass
    assert train(*options, "--epochs", "1", *QUICK) == 1
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    assert train(*options, "--epochs", "1", "--out", "mine", *QUICK) == 1
    assert not (tmp_path / "mine").exists()


def test_a_folder_of_other_files_is_not_taken(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    assert train("--epochs", "1", "--out", "notes", *QUICK) == 1
    assert "holds other files (todo.txt)" in capsys.readouterr().err
    assert sorted(path.name for path in (tmp_path / "notes").iterdir()) == ["todo.txt"]


def test_nan_in_the_first_epoch_says_there_is_no_checkpoint(tmp_path):
    trainer = Trainer(quick_config(), tmp_path / "run", progress=False)
    trainer.model.fc1.weight.data[0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="run has no checkpoint yet$"):
        trainer.fit(1, log=lambda line: None)
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_ctrl_c_saves_nothing_partial_and_prints_the_resume_command(tmp_path):
    """Ctrl-C at a terminal sends SIGINT to a foreground tinyae. A shell without job control starts its
    background jobs with SIGINT ignored, the child inherits that, and Python keeps an inherited ignore (the
    test then saw all 1,000 epochs run, exit 0, when the suite ran in the background): the child is given
    the disposition of a foreground process, Python's handler, which exec turns into the default."""
    environment = dict(os.environ, PYTHONPATH=str(ROOT), TINYAE_BACKEND="numpy")
    command = [sys.executable, "-m", "tinyae", "train", "--epochs", "1000", "--out", "run", *QUICK]
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, inherited)
    deadline = time.monotonic() + 60
    while not (tmp_path / "run" / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, error = process.communicate(timeout=60)
    assert process.returncode == 130
    run = Run.open(tmp_path / "run")
    assert error.strip().splitlines()[-1] == (f"interrupted; run keeps {run.epoch} finished epochs; continue "
                                              "with: tinyae train --resume run --epochs 1000")
    assert run.epoch >= 1 and [record["epoch"] for record in run.metrics] == list(range(1, run.epoch + 1))
    assert len(lines(tmp_path / "run")) == run.epoch and not list((tmp_path / "run").glob("*.tmp"))


def test_load_run_gives_config_model_metrics_and_the_commands_functions(two_epochs):
    run = tinyae.load_run(two_epochs)
    assert run.epoch == 2 and run.config["model_config"] == {"hidden": 32, "latent_dim": 4}
    assert [record["epoch"] for record in run.metrics] == [1, 2]
    assert not run.model.training
    saved = np.load(two_epochs / "checkpoint.npz")["model/fc1.weight"]
    np.testing.assert_array_equal(run.model.fc1.weight.numpy(), saved)
    report = run.evaluate(k=4, limit=50)
    assert report["epoch"] == 2 and report["negative_log_likelihood"] < report["negative_elbo"]
    assert run.figure_path("sample") == two_epochs / "figures" / "sample.png"
    assert run.samples(4) == run.figure_path("sample") and run.loss_curves() == run.figure_path("plot")
    assert run.samples(4, path=two_epochs / "four.png") == two_epochs / "four.png"
    with pytest.raises(RunError, match="read-only"):
        run.append_metrics({"epoch": 3})


def test_load_run_builds_the_model_in_the_runs_dtype_whatever_the_default(two_epochs):
    tinyae.set_default_dtype("float64")  # (the suite's fixture sets float32 back)
    model = tinyae.load_run(two_epochs).model
    assert {str(parameter.dtype) for parameter in model.parameters()} == {"float32"}
    assert tinyae.get_default_dtype() == np.float64


def test_import_tinyae_loads_neither_the_application_nor_matplotlib():
    code = ("import tinyae, sys; assert 'tinyae.app' not in sys.modules and 'matplotlib' not in sys.modules; "
            "tinyae.load_run; assert 'tinyae.app.run' in sys.modules and 'matplotlib' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_kill_points_are_named_once_each():
    source = Path(run_module.__file__).read_text()
    for point in run_module.KILL_POINTS:
        assert source.count(f'"{point}"') == 2, point  # the list, and the one place it kills


def test_log_grad_norms_is_stored_kept_on_resume_and_plotted(tmp_path, capsys):
    assert train("--epochs", "1", "--out", "logged", "--log-grad-norms", *QUICK) == 0
    assert json.loads(Path("logged/config.json").read_text())["log_grad_norms"] is True
    assert train("--resume", "logged", "--epochs", "2", "--quiet") == 0  # no flag given: the run keeps it
    records = [json.loads(line) for line in lines(Path("logged"))]
    assert [list(record["grad_norms"]) for record in records] == [["fc1", "fc21", "fc22", "fc3", "fc4"]] * 2
    assert main(["plot", "logged"]) == 0
    assert Path("logged/figures/plot.png").stat().st_size > 2000
    assert train("--resume", "logged", "--epochs", "3", "--log-grad-norms", "--quiet") == 0  # the same value


def test_log_grad_norms_cannot_be_switched_on_by_resume(two_epochs, capsys):
    capsys.readouterr()
    assert train("--resume", two_epochs, "--epochs", "3", "--log-grad-norms", "--quiet") == 1
    assert "only --epochs may change, not --log-grad-norms" in capsys.readouterr().err


def test_a_run_written_before_log_grad_norms_existed_reads_resumes_and_plots(damaged, capsys):
    config = json.loads((damaged / "config.json").read_text())
    del config["log_grad_norms"]
    (damaged / "config.json").write_text(json.dumps(config))
    assert Run.open(damaged).config["log_grad_norms"] is False
    assert main(["plot", str(damaged)]) == 0
    assert train("--resume", damaged, "--epochs", "3", "--quiet") == 0
    assert "grad_norms" not in json.loads(lines(damaged)[-1])
    assert "log_grad_norms" not in json.loads((damaged / "config.json").read_text())  # the file is kept
