"""The tinyae command: a quick training run, the figure commands, and its errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tinyae.app.cli import main
from tests.conftest import BACKEND

QUICK = ["--limit", "256", "--test-limit", "100", "--batch-size", "64", "--hidden", "32", "--latent-dim", "4", "--quiet"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if BACKEND == "strict":
        pytest.skip("the command offers the numpy and cupy backends")


def run(*args):
    return main([str(a) for a in args])


def test_train_writes_a_complete_run_folder(tmp_path, capsys):
    assert run("train", "--epochs", "2", *QUICK) == 0
    folder = tmp_path / "runs" / "vae"
    config = json.loads((folder / "config.json").read_text())
    assert config["model"] == "vae" and config["model_config"] == {"hidden": 32, "latent_dim": 4}
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == 2
    assert (folder / "checkpoint.npz").is_file()
    for name in ("reconstructions", "samples", "loss"):
        assert (folder / "figures" / f"{name}.png").stat().st_size > 1000
    output = capsys.readouterr().out
    assert "epoch   2  train" in output and "figure:" in output
    assert run("train", "--epochs", "1", *QUICK) == 0
    assert (tmp_path / "runs" / "vae-2" / "config.json").is_file()  # a taken folder is never overwritten


def test_figure_commands_write_their_own_files_and_never_training_s(tmp_path, capsys):
    run("train", "--epochs", "1", "--out", "run", *QUICK)
    figures = tmp_path / "run" / "figures"
    trainings = {path.name: path.read_bytes() for path in figures.iterdir()}
    assert sorted(trainings) == ["loss.png", "reconstructions.png", "samples.png"]
    capsys.readouterr()
    for command in (["sample", "run", "-n", "16"], ["reconstruct", "run"], ["plot", "run"]):
        assert run(*command) == 0
        path = Path(capsys.readouterr().out.strip().splitlines()[-1])
        assert path == Path("run", "figures", f"{command[0]}.png") and path.stat().st_size > 1000
    assert {name: (figures / name).read_bytes() for name in trainings} == trainings  # untouched
    assert run("sample", "run", "-n", "4", "--output", "elsewhere/four.pdf") == 0
    assert capsys.readouterr().out.strip() == "elsewhere/four.pdf"
    assert (tmp_path / "elsewhere" / "four.pdf").read_bytes().startswith(b"%PDF")
    assert run("sample", "run", "-n", "4", "--output", "run/figures/samples.png") == 0  # asked for: replaced
    assert (figures / "samples.png").read_bytes() != trainings["samples.png"]
    assert not list(figures.glob("*.tmp"))


@pytest.mark.parametrize("output, message", [("four.xyz", "expected a file name ending in one of"),
                                             (".", "expected a file name, got the folder")])
def test_figure_output_must_be_a_file_of_a_known_format(output, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        run("sample", "run", "--output", output)
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and message in error and "Traceback" not in error


def test_resume_continues_in_place_and_refuses_other_architectures(tmp_path, capsys):
    run("train", "--epochs", "1", "--out", "run", *QUICK)
    assert run("train", "--resume", "run", "--epochs", "2", "--quiet") == 0
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
    capsys.readouterr()
    assert run("train", "--resume", "run", "--epochs", "3", "--latent-dim", "8") == 1
    error = capsys.readouterr().err
    assert "latent_dim" in error and "Traceback" not in error
    assert run("train", "--resume", "run", "--epochs", "3", "--lr", "0.1") == 1
    assert "--lr" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["sample", "missing"], "no run folder"),
    (["reconstruct", "."], "not a tinyae run"),
])
def test_bad_runs_and_options_give_one_line_errors(args, message, capsys):
    assert run(*args) == 1
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_unknown_choices_list_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run("train", "--model", "gan")
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'gan'" in error and "conv-vae" in error


def test_sampling_needs_a_vae(capsys):
    run("train", "--epochs", "1", "--out", "plain", "--model", "ae", *QUICK)
    capsys.readouterr()
    assert run("sample", "plain") == 1
    assert "needs a VAE" in capsys.readouterr().err


def test_python_dash_m_runs_the_command():
    result = subprocess.run([sys.executable, "-m", "tinyae", "--help"], capture_output=True, text=True, check=True)
    assert "train" in result.stdout and "sample" in result.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny one-epoch runs: a VAE with a 4-D code, a binarized VAE with a 2-D code, and an AE."""
    if BACKEND == "strict":
        pytest.skip("the command offers the numpy and cupy backends")
    folder = tmp_path_factory.mktemp("runs")
    two_d = [value if value != "4" else "2" for value in QUICK]
    runs = {"vae": QUICK, "vae2d": [*two_d, "--binarize"], "ae": ["--model", "ae", *QUICK]}
    for name, options in runs.items():
        assert run("train", "--epochs", "1", "--out", folder / name, *options) == 0
    return folder


def printed_png(capsys):
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert path.suffix == ".png" and path.stat().st_size > 2000
    return path


def test_eval_reports_elbo_likelihood_and_active_units(trained, capsys):
    capsys.readouterr()
    assert run("eval", trained / "vae", "-k", "8", "--limit", "100", "--quiet") == 0
    output = capsys.readouterr().out
    report = json.loads((trained / "vae" / "eval.json").read_text())
    assert "negative ELBO" in output and "IWAE k=8" in output and "active units" in output
    assert report["test_images"] == 100 and report["data"].startswith("continuous")
    assert report["negative_elbo"] == pytest.approx(report["reconstruction"] + report["kl"])
    assert report["negative_log_likelihood"] < report["negative_elbo"]
    assert len(report["kl_per_dimension"]) == 4 and 0 <= report["active_units"] <= 4
    test_loss = json.loads((trained / "vae" / "metrics.jsonl").read_text().splitlines()[-1])["test_loss"]
    assert report["negative_elbo"] == test_loss  # the same 100 test images and posterior samples as training's
    assert run("eval", trained / "vae2d", "-k", "2", "--limit", "10", "--quiet") == 0
    assert json.loads((trained / "vae2d" / "eval.json").read_text())["data"].startswith("binarized")


def test_eval_of_an_autoencoder_reports_its_reconstruction_loss_only(trained, capsys):
    capsys.readouterr()
    assert run("eval", trained / "ae", "--limit", "50") == 0
    output = capsys.readouterr().out
    report = json.loads((trained / "ae" / "eval.json").read_text())
    assert "no likelihood" in output and "negative_elbo" not in report and report["reconstruction"] > 0


def test_latent_space_figures(trained, capsys):
    capsys.readouterr()
    commands = [["interpolate", "vae", "--pairs", "3", "--steps", "4"], ["traverse", "vae"],
                ["traverse", "ae", "--zero", "--dims", "2"], ["embed", "vae", "--limit", "200"],
                ["embed", "vae2d", "--limit", "200"], ["manifold", "vae2d", "--size", "6"],
                ["interpolate", "ae"]]
    for command, name, *options in commands:
        assert run(command, trained / name, *options) == 0
        assert printed_png(capsys).parent == trained / name / "figures"


@pytest.mark.parametrize("args, message", [
    (["manifold", "vae"], "needs a 2-D latent space"),
    (["traverse", "vae", "--index", "99999"], "--index 99999 is not a test image"),
    (["eval", "missing"], "no run folder"),
])
def test_latent_commands_refuse_in_one_line(trained, args, message, capsys):
    capsys.readouterr()
    assert run(args[0], trained / args[1], *args[2:]) == 1
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_gradcheck_command_checks_and_reports():
    assert run("gradcheck", "--only", "conv2d", "--repeats", "1") == 0
