"""Bad input never ends in a traceback: each case runs the real command and expects its exit code (2 for a
usage error, 1 for a failure at run time), one line on stderr naming what was wrong, and no "Traceback".

One tiny trained run is made per module; each case that damages a run works on its own copy."""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from tinyae import backend
from tinyae.app import checkpoint
from tinyae.app.cli import main
from tinyae.app.run import json_safe
from tinyae.data import DataError, idx

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--hidden", "16", "--latent-dim", "2", "--limit", "200", "--test-limit", "100", "--epochs", "1",
        "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_input")
    assert main(["train", *TINY, "--out", str(folder / "run")]) == 0
    return folder / "run"


@pytest.fixture
def run_copy(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def outcome(argv, capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().err


def assert_one_line_error(code, err, expected_code, fragment):
    assert "Traceback" not in err
    assert code == expected_code, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("tinyae") and "error:" in last, err
    assert fragment in last, last
    if expected_code == 1:  # ours, not argparse's usage line + error line
        assert len(err.strip().splitlines()) == 1, err


# Options out of range: usage errors (exit 2) --------------------------------------------------------------

USAGE = [
    (["train", "--seed", "-1"], "--seed: expected an integer from 0"),
    (["train", "--seed", "1.5"], "--seed"),
    (["train", "--seed", "abc"], "--seed"),
    (["train", "--seed", str(2**70)], "--seed"),
    (["train", "--kl-warmup", "inf"], "--kl-warmup: expected a finite number >= 0"),
    (["train", "--kl-warmup", "nan"], "--kl-warmup"),
    (["train", "--kl-warmup", "-1"], "--kl-warmup"),
    (["train", "--lr", "0"], "--lr: expected a finite number > 0"),
    (["train", "--lr", "-0.1"], "--lr"),
    (["train", "--lr", "inf"], "--lr"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--lr", "1e400"], "--lr"),
    (["train", "--lr", "fast"], "--lr"),
    (["train", "--beta", "inf"], "--beta"),
    (["train", "--beta", "-1"], "--beta"),
    (["train", "--beta", "nan"], "--beta"),
    (["train", "--model", "sparse-ae", "--sparsity", "inf"], "--sparsity"),
    (["train", "--model", "sparse-ae", "--sparsity", "-2"], "--sparsity"),
    (["train", "--model", "denoising-ae", "--noise", "-0.1"], "--noise"),
    (["train", "--model", "denoising-ae", "--noise", "inf"], "--noise"),
    (["train", "--model", "denoising-ae", "--noise", "nan"], "--noise"),
    (["train", "--model", "denoising-ae", "--noise-type", "mask", "--noise", "1"], "masking probability"),
    (["train", "--model", "denoising-ae", "--noise-type", "mask", "--noise", "2"], "masking probability"),
    (["train", "--hidden", "0"], "--hidden: expected an integer from 1 to 16384"),
    (["train", "--hidden", "-5"], "--hidden"),
    (["train", "--hidden", "1e8"], "--hidden"),
    (["train", "--hidden", "100000000"], "--hidden"),
    (["train", "--latent-dim", "0"], "--latent-dim"),
    (["train", "--latent-dim", "20000"], "--latent-dim"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--epochs", "-1"], "--epochs"),
    (["train", "--epochs", "1000000000"], "--epochs"),
    (["train", "--epochs", "ten"], "--epochs"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--batch-size", "10000000"], "--batch-size"),
    (["train", "--limit", "0"], "--limit"),
    (["train", "--test-limit", "-3"], "--test-limit"),
    (["train", "--data-dir", "/no/such/folder"], "--data-dir: expected an existing folder"),
    (["train", "--model", "gan"], "invalid choice: 'gan'"),
    (["train", "--optimizer", "lbfgs"], "invalid choice"),
    (["train", "--backend", "tpu"], "invalid choice"),
    (["train", "--likelihood", "poisson"], "invalid choice"),
    (["train", "--model", "ae", "--beta", "4"], "--beta does not apply to --model ae"),
    (["train", "--model", "vae", "--noise", "0.1"], "--noise does not apply to --model vae"),
    (["train", "--model", "conv-vae", "--hidden", "16"], "--hidden does not apply"),
    (["train", "--no-such-option"], "unrecognized arguments"),
    (["train", "--log-grad-norms=yes"], "argument --log-grad-norms: ignored explicit argument 'yes'"),
    (["train", "--log-grad-norms", "yes"], "unrecognized arguments: yes"),
    (["eval", "RUN", "-k", "0"], "-k: expected an integer from 1"),
    (["eval", "RUN", "-k", "-3"], "-k"),
    (["eval", "RUN", "-k", "10000000"], "-k"),
    (["eval", "RUN", "-k", "many"], "-k"),
    (["eval", "RUN", "--limit", "0"], "--limit"),
    (["sample", "RUN", "-n", "0"], "-n"),
    (["sample", "RUN", "-n", "100000"], "-n"),
    (["interpolate", "RUN", "--pairs", "0"], "--pairs"),
    (["interpolate", "RUN", "--steps", "-1"], "--steps"),
    (["traverse", "RUN", "--index", "-1"], "--index: expected an integer >= 0"),
    (["traverse", "RUN", "--dims", "0"], "--dims"),
    (["manifold", "RUN", "--size", "0"], "--size"),
    (["manifold", "RUN", "--size", "5000"], "--size"),
    (["embed", "RUN", "--limit", "0"], "--limit"),
    (["nonsense"], "invalid choice"),
    ([], "required"),
]


@pytest.mark.parametrize("argv, fragment", USAGE, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_usage_errors(argv, fragment, trained, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tinyae.app.cli.Trainer", lambda *args, **kwargs: pytest.fail("training started"))
    code, err = outcome([str(trained) if a == "RUN" else a for a in argv], capsys)
    assert_one_line_error(code, err, 2, fragment)
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_data_dir_that_is_a_file_or_lacks_the_files(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("x")
    assert_one_line_error(*outcome(["train", *TINY, "--data-dir", tmp_path / "file"], capsys), 2,
                          "not a folder")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(*outcome(["train", *TINY, "--data-dir", tmp_path / "empty"], capsys), 1,
                          "holds no train-images-idx3-ubyte, train-labels-idx1-ubyte")


def test_a_data_file_declaring_too_many_images_is_refused_by_the_command(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    header = bytes([0, 0, 8, 3]) + np.array([10**6, 28, 28], ">u4").tobytes()
    for split in ("train", "t10k"):
        (tmp_path / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(784)))
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 7]))
    code, err = outcome(["train", *TINY, "--data-dir", tmp_path], capsys)
    assert_one_line_error(code, err, 1, "its header declares dimensions 1000000x28x28")


# Damaged checkpoints: run-time errors (exit 1), refused before anything large is allocated ------------------

def npy_bytes(array=None, *, shape=None, dtype="<f4", payload=b"") -> bytes:
    """A .npy file: of ``array``, or a header declaring ``shape``/``dtype`` followed by ``payload``."""
    if array is not None:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=True)
        return buffer.getvalue()
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + payload


@contextmanager
def peak_memory():
    """Yields a list that holds, after the block, the peak of Python's allocations during it."""
    peak: list[int] = []
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def rewrite(path: Path, change) -> None:
    """Rewrite the checkpoint's members: ``change(members)`` edits {name: bytes} in place."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    change(members)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def set_meta(members, text: bytes) -> None:
    members["meta.npy"] = npy_bytes(np.frombuffer(text, np.uint8))


def edit_meta(edit):
    def change(members):
        meta = json.loads(np.load(io.BytesIO(members["meta.npy"])).tobytes())
        edit(meta)
        set_meta(members, json.dumps(meta).encode())
    return change


def flip(offset_from_end=None, offset=None):
    def damage(path: Path):
        data = bytearray(path.read_bytes())
        position = offset if offset is not None else len(data) - offset_from_end
        data[position] ^= 0x40
        path.write_bytes(bytes(data))
    return damage


def flip_central_directory(path: Path):
    flip(offset=path.read_bytes().index(b"PK\x01\x02") + 1)(path)


def member_offset(path: Path, name: str) -> int:
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    return info.header_offset + 30 + len(name) + len(info.extra) + 200  # inside the member's data


def bit_flip_in_data(path: Path):
    flip(offset=member_offset(path, "model/fc1.weight.npy"))(path)


def huge_optimizer_array(members):
    """An optimizer member whose header declares 8 TiB (1 MB stored)."""
    members["state/10.npy"] = npy_bytes(shape=(2**41,), payload=bytes(1 << 20))


CHECKPOINT_DAMAGE = {
    "missing": (lambda path: path.unlink(), "has no checkpoint yet (no epoch has finished)"),
    "a folder": (lambda path: (path.unlink(), path.mkdir()), "no checkpoint at"),
    "empty": (lambda path: path.write_bytes(b""), "is not a tinyae checkpoint"),
    "random bytes": (lambda path: path.write_bytes(np.random.default_rng(0).bytes(5000)),
                     "is not a tinyae checkpoint"),
    "truncated to half": (lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
                          "is not a tinyae checkpoint"),
    "truncated by 10 bytes": (lambda path: path.write_bytes(path.read_bytes()[:-10]),
                              "is not a tinyae checkpoint"),
    "bit flip in the central directory": (flip_central_directory, "is not a tinyae checkpoint"),
    "bit flip in a member's data (CRC)": (bit_flip_in_data, "is not a tinyae checkpoint"),
    "a pickled member": (lambda path: rewrite(path, lambda m: m.update(
        {"model/fc1.bias.npy": npy_bytes(np.array([{"x": 1}], dtype=object))})), "contains pickled objects"),
    "pickled meta": (lambda path: rewrite(path, lambda m: m.update(
        {"meta.npy": npy_bytes(np.array(["meta"], dtype=object))})), "contains pickled objects"),
    "no meta": (lambda path: rewrite(path, lambda m: m.pop("meta.npy")), "no 'meta' entry"),
    "meta not UTF-8": (lambda path: rewrite(path, lambda m: set_meta(m, b"\xff\xfe{}")), "damaged metadata"),
    "meta not JSON": (lambda path: rewrite(path, lambda m: set_meta(m, b"{not json")), "damaged metadata"),
    "meta nested 100000 deep": (lambda path: rewrite(path, lambda m: set_meta(m, b"[" * 100_000)),
                                "damaged metadata"),
    "meta a list": (lambda path: rewrite(path, lambda m: set_meta(m, b"[1, 2]")), "expected a JSON object"),
    "meta larger than 1 MB": (lambda path: rewrite(path, lambda m: set_meta(m, b" " * (2 << 20))),
                              "must be at most 1048576 bytes"),
    "meta of float64": (lambda path: rewrite(path, lambda m: m.update({"meta.npy": npy_bytes(np.zeros(3))})),
                        "must be at most"),
    "format version 2": (lambda path: rewrite(path, edit_meta(lambda m: m.update(format_version=2))),
                         "checkpoint format 2"),
    "no epoch": (lambda path: rewrite(path, edit_meta(lambda m: m.pop("epoch"))), "it lacks epoch"),
    "epoch -1": (lambda path: rewrite(path, edit_meta(lambda m: m.update(epoch=-1))), "epoch must be"),
    "epoch a string": (lambda path: rewrite(path, edit_meta(lambda m: m.update(epoch="1"))), "epoch must be"),
    "config a list": (lambda path: rewrite(path, edit_meta(lambda m: m.update(config=[]))),
                      "config must be an object"),
    "optimizer refers to a missing array": (lambda path: rewrite(path, edit_meta(
        lambda m: m.update(optimizer={"array": "state/999"}))), "optimizer state is malformed"),
    "optimizer state of the wrong structure": (lambda path: rewrite(path, edit_meta(
        lambda m: m.update(optimizer={"list": [1, 2]}))), "damaged optimizer or data state"),
    "a model array of another shape": (lambda path: rewrite(path, lambda m: m.update(
        {"model/fc1.bias.npy": npy_bytes(np.zeros(17, np.float32))})), "the model needs shape (16,)"),
    "a model array of float64": (lambda path: rewrite(path, lambda m: m.update(
        {"model/fc1.bias.npy": npy_bytes(np.zeros(16))})), "dtype float64"),
    "a missing model array": (lambda path: rewrite(path, lambda m: m.pop("model/fc4.bias.npy")),
                              "lacks model arrays the model needs: fc4.bias"),
    "an unknown member": (lambda path: rewrite(path, lambda m: m.update(
        {"model/extra.npy": npy_bytes(np.zeros(3, np.float32))})), "unknown key"),
    "a member that is not .npy": (lambda path: rewrite(path, lambda m: m.update({"notes.txt": b"hi"})),
                                  "unexpected member"),
    "8 TiB declared by an optimizer array": (lambda path: rewrite(path, huge_optimizer_array),
                                             "which no parameter has"),
    "a model array declared 8 TiB": (lambda path: rewrite(path, lambda m: m.update(
        {"model/fc1.bias.npy": npy_bytes(shape=(2**41,), payload=bytes(64))})), "the model needs shape"),
    "data shorter than its header declares": (lambda path: rewrite(path, lambda m: m.update(
        {"model/fc1.bias.npy": npy_bytes(shape=(16,), payload=bytes(10))})), "holds 10 bytes of data"),
    "data longer than its header declares": (lambda path: rewrite(path, lambda m: m.update(
        {"model/fc1.bias.npy": npy_bytes(shape=(16,), payload=bytes(64 + 1 << 20))})),
        "but its header declares 64"),
    "too many optimizer arrays": (lambda path: rewrite(path, lambda m: m.update(
        {f"state/{900 + i}.npy": npy_bytes(np.zeros(16, np.float32)) for i in range(40)})),
        "holds 60 optimizer arrays"),
}


ALSO_THROUGH_SAMPLE_AND_RESUME = ("random bytes", "a pickled member", "meta nested 100000 deep",
                                  "8 TiB declared by an optimizer array",
                                  "optimizer state of the wrong structure")


@pytest.mark.parametrize("case, command", [(case, "eval") for case in CHECKPOINT_DAMAGE] + [
    (case, command) for case in ALSO_THROUGH_SAMPLE_AND_RESUME for command in ("sample", "train-resume")])
def test_damaged_checkpoints(case, command, run_copy, capsys):
    damage, fragment = CHECKPOINT_DAMAGE[case]
    damage(run_copy / "checkpoint.npz")
    argv = {"eval": ["eval", run_copy, "-k", "2", "--quiet"], "sample": ["sample", run_copy, "-n", "4"],
            "train-resume": ["train", "--resume", run_copy, "--epochs", "2", "--quiet"]}[command]
    if case == "optimizer state of the wrong structure" and command != "train-resume":
        assert outcome(argv, capsys)[0] == 0  # eval and sample read no optimizer state
        return
    code, err = outcome(argv, capsys)
    assert_one_line_error(code, err, 1, fragment)
    assert str(run_copy / "checkpoint.npz") in err or "no checkpoint" in err


def test_an_8_tib_member_is_refused_before_it_is_allocated(run_copy):
    """The declared size is checked from the header: the refusal allocates nothing near it."""
    rewrite(run_copy / "checkpoint.npz", lambda m: m.update(
        {"model/fc1.bias.npy": npy_bytes(shape=(2**41,), payload=bytes(1 << 20))}))
    with peak_memory() as peak, pytest.raises(checkpoint.CheckpointError,
                                              match="holds 1048576 bytes of data, but its header declares"):
        checkpoint.load(run_copy / "checkpoint.npz")  # no expected shapes: the stored size still bounds it
    assert peak[0] < 8 << 20


def test_a_deflated_member_is_read_no_further_than_the_model_needs(run_copy):
    """A member that decompresses to 200 MB of which the model needs 64 bytes: refused, ~nothing read."""
    path = run_copy / "checkpoint.npz"
    with np.load(path) as saved:
        expected = {key[len("model/"):]: (saved[key].shape, saved[key].dtype) for key in saved.files
                    if key.startswith("model/")}
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in members.items():
            if name != "model/fc1.bias.npy":
                archive.writestr(name, data)
        with archive.open("model/fc1.bias.npy", "w", force_zip64=True) as member:
            member.write(npy_bytes(shape=(16,)))
            for _ in range(200):
                member.write(bytes(1 << 20))
    with peak_memory() as peak, pytest.raises(checkpoint.CheckpointError, match="but its header declares 64"):
        checkpoint.load(path, expected)
    assert peak[0] < 8 << 20


# Damaged config.json and metrics.jsonl ---------------------------------------------------------------------

def edit_config(edit):
    def damage(run: Path):
        config = json.loads((run / "config.json").read_text())
        edit(config)
        (run / "config.json").write_text(json.dumps(config))
    return damage


CONFIG_DAMAGE = {
    "missing": (lambda run: (run / "config.json").unlink(), "has no config.json"),
    "not JSON": (lambda run: (run / "config.json").write_text("{"), "is not valid JSON"),
    "not UTF-8": (lambda run: (run / "config.json").write_bytes(b"\xff\xfe"), "is not valid JSON"),
    "nested 100000 deep": (lambda run: (run / "config.json").write_text("[" * 100_000), "is not valid JSON"),
    "a list": (lambda run: (run / "config.json").write_text("[]"), "must hold a JSON object"),
    "format version 7": (edit_config(lambda c: c.update(format_version=7)), "incompatible tinyae"),
    "no lr": (edit_config(lambda c: c.pop("lr")), "missing keys: lr"),
    "an unknown key": (edit_config(lambda c: c.update(colour="red")), "unknown keys: colour"),
    "lr a string": (edit_config(lambda c: c.update(lr="fast")), "lr must be a finite number > 0, got 'fast'"),
    "lr -1": (edit_config(lambda c: c.update(lr=-1)), "lr must be a finite number > 0"),
    "lr Infinity": (edit_config(lambda c: c.update(lr=float("inf"))), "lr must be a finite number"),
    "seed -1": (edit_config(lambda c: c.update(seed=-1)), "seed must be an integer from 0"),
    "seed 1.5": (edit_config(lambda c: c.update(seed=1.5)), "seed must be an integer"),
    "epochs 0": (edit_config(lambda c: c.update(epochs=0)), "epochs must be an integer from 1"),
    "batch_size true": (edit_config(lambda c: c.update(batch_size=True)), "batch_size must be an integer"),
    "binarize 1": (edit_config(lambda c: c.update(binarize=1)), "binarize must be true or false"),
    "log_grad_norms a string": (edit_config(lambda c: c.update(log_grad_norms="yes")),
                                "log_grad_norms must be true or false, got 'yes'"),
    "log_grad_norms null": (edit_config(lambda c: c.update(log_grad_norms=None)),
                            "log_grad_norms must be true or false, got None"),
    "model gan": (edit_config(lambda c: c.update(model="gan")), "model must be one of"),
    "backend tpu": (edit_config(lambda c: c.update(backend="tpu")), "backend must be one of"),
    "dataset a number": (edit_config(lambda c: c.update(dataset=3)), "dataset must be one of"),
    "data_dir a number": (edit_config(lambda c: c.update(data_dir=5)), "data_dir must be a non-empty string"),
    "kl_warmup -1": (edit_config(lambda c: c.update(kl_warmup=-1)), "kl_warmup must be a finite number"),
    "limit 0": (edit_config(lambda c: c.update(limit=0)), "limit must be an integer"),
    "model_config a list": (edit_config(lambda c: c.update(model_config=[])),
                            "model_config must be an object"),
    "hidden 1e8": (edit_config(lambda c: c["model_config"].update(hidden=10**8)),
                   "model_config.hidden must be an integer from 1 to 16384"),
    "latent_dim a string": (edit_config(lambda c: c["model_config"].update(latent_dim="2")),
                            "model_config.latent_dim must be an integer"),
    "a model key the model lacks": (edit_config(lambda c: c["model_config"].update(penalty="l1")),
                                    "which a vae does not have"),
    "beta NaN": (edit_config(lambda c: c["model_config"].update(beta=float("nan"))),
                 "model_config.beta must be a finite number"),
}


@pytest.mark.parametrize("case", list(CONFIG_DAMAGE))
def test_damaged_config(case, run_copy, capsys):
    damage, fragment = CONFIG_DAMAGE[case]
    damage(run_copy)
    code, err = outcome(["sample", run_copy, "-n", "4"], capsys)
    assert_one_line_error(code, err, 1, fragment)


def test_a_damaged_config_is_refused_by_resume_too(run_copy, capsys):
    edit_config(lambda c: c.update(seed=-1))(run_copy)
    code, err = outcome(["train", "--resume", run_copy, "--epochs", "2", "--quiet"], capsys)
    assert_one_line_error(code, err, 1, "seed must be an integer from 0")


METRICS_DAMAGE = {
    "a line that is not JSON": (b"garbage\n", "line 1, is not JSON"),
    "a line that is not an object": (b"[1]\n", "line 1: expected a JSON object with an integer epoch"),
    "an epoch that is a string": (b'{"epoch": "1"}\n', "line 1: expected a JSON object"),
    "not UTF-8": (b"\xff\xfe\n", "is not UTF-8 text"),
}


@pytest.mark.parametrize("case", list(METRICS_DAMAGE))
def test_damaged_metrics_in_the_middle(case, run_copy, capsys):
    text, fragment = METRICS_DAMAGE[case]
    path = run_copy / "metrics.jsonl"
    good = path.read_bytes()
    path.write_bytes(text + good)  # the damaged line comes first: not a torn last line
    code, err = outcome(["plot", run_copy], capsys)
    assert_one_line_error(code, err, 1, fragment)


def test_missing_metrics(run_copy, capsys):
    (run_copy / "metrics.jsonl").unlink()
    assert_one_line_error(*outcome(["plot", run_copy], capsys), 1, "has no metrics yet")


# Runs that are not there, values out of the data's range ---------------------------------------------------

def test_runs_that_are_not_runs(tmp_path, capsys):
    assert_one_line_error(*outcome(["eval", tmp_path / "nothing"], capsys), 1, "no run folder at")
    (tmp_path / "file").write_text("x")
    assert_one_line_error(*outcome(["sample", tmp_path / "file"], capsys), 1, "no run folder at")
    assert_one_line_error(*outcome(["reconstruct", tmp_path], capsys), 1, "is not a tinyae run")
    assert_one_line_error(*outcome(["train", "--resume", tmp_path / "nothing"], capsys), 1, "no run folder")


def test_index_beyond_the_test_set(trained, capsys):
    assert_one_line_error(*outcome(["traverse", trained, "--index", "99999"], capsys), 1,
                          "--index 99999 is not a test image")


# Destinations that cannot be written -----------------------------------------------------------------------

def test_out_names_a_file(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    assert_one_line_error(*outcome(["train", *TINY, "--out", tmp_path / "taken"], capsys), 2,
                          "is a file, not a folder")


def test_out_inside_a_file(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    code, err = outcome(["train", *TINY, "--out", tmp_path / "taken" / "run"], capsys)
    assert_one_line_error(code, err, 1, f"cannot write or read {tmp_path / 'taken' / 'run'}: Not a directory")


def raise_on(monkeypatch, number: int, method: str = "open"):
    """The OS refusing with errno ``number`` to write config.json or eval.json (through the run folder's
    write-then-rename, which opens NAME.tmp) or to make runs/vae (Path.mkdir)."""
    if method == "open":
        def failing_open(file, *args, **kwargs):
            if Path(file).name in ("config.json.tmp", "eval.json.tmp"):
                open(file, *args, **kwargs).close()  # created, then its write fails
                raise OSError(number, os.strerror(number), str(file))
            return open(file, *args, **kwargs)
        monkeypatch.setattr("tinyae.app.run.open", failing_open, raising=False)
        return
    original = getattr(Path, method)

    def failing(self, *args, **kwargs):
        if self.name in ("runs", "vae"):
            raise OSError(number, os.strerror(number), str(self))
        return original(self, *args, **kwargs)
    monkeypatch.setattr(Path, method, failing)


def test_a_full_disk(tmp_path, capsys, monkeypatch):
    raise_on(monkeypatch, errno.ENOSPC)
    code, err = outcome(["train", *TINY, "--out", tmp_path / "run"], capsys)
    assert_one_line_error(code, err, 1, f"{tmp_path / 'run' / 'config.json'}: No space left on device")
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_a_read_only_folder_for_eval_json(run_copy, capsys, monkeypatch):
    raise_on(monkeypatch, errno.EROFS)
    code, err = outcome(["eval", run_copy, "-k", "2", "--quiet"], capsys)
    assert_one_line_error(code, err, 1, f"{run_copy / 'eval.json'}: Read-only file system")
    assert not list(run_copy.glob("*.tmp"))


def test_a_read_only_working_directory_for_the_default_runs_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raise_on(monkeypatch, errno.EACCES, "mkdir")
    code, err = outcome(["train", *TINY], capsys)
    assert_one_line_error(code, err, 1, "Permission denied (the default run folder is runs/")


# Environment variables --------------------------------------------------------------------------------------

def cupy_usable() -> bool:
    try:
        backend.module("cupy")
        return True
    except RuntimeError:
        return False


@pytest.mark.parametrize("value, code, fragment", [
    ("typo", 2, "TINYAE_BACKEND='typo' is not a backend; expected one of numpy, cupy, strict"),
    ("NUMPY", 2, "TINYAE_BACKEND='NUMPY' is not a backend"),
    ("cupy", 1, "TINYAE_BACKEND=cupy:"),
])
def test_bad_backend_variable(value, code, fragment, trained, capsys, monkeypatch):
    if value == "cupy" and cupy_usable():
        pytest.skip("the cupy backend works here")
    monkeypatch.setenv("TINYAE_BACKEND", value)
    monkeypatch.setattr(backend, "_active", None)
    for argv in (["sample", trained, "-n", "4"], ["gradcheck", "--only", "nothing"]):
        assert_one_line_error(*outcome(argv, capsys), code, fragment)


@pytest.mark.parametrize("value", ["maybe", "2", "yes please"])
def test_bad_debug_variable(value, trained, capsys, monkeypatch):
    monkeypatch.setenv("TINYAE_DEBUG", value)
    assert_one_line_error(*outcome(["sample", trained, "-n", "4"], capsys), 2,
                          f"TINYAE_DEBUG={value!r} is not a boolean")


@pytest.mark.parametrize("value", ["/no/such/folder", "FILE"])
def test_bad_data_variable(value, trained, tmp_path, capsys, monkeypatch):
    (tmp_path / "FILE").write_text("x")
    value = str(tmp_path / "FILE") if value == "FILE" else value
    monkeypatch.setenv("TINYAE_DATA", value)
    assert_one_line_error(*outcome(["reconstruct", trained], capsys), 1,
                          f"TINYAE_DATA={value!r} is not a folder")


def command(*argv, **env):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-m", "tinyae", *map(str, argv)], capture_output=True, text=True,
                          env=environment, timeout=60)


@pytest.mark.parametrize("value", ["typo", "cupy"])
def test_help_works_whatever_the_backend_variable(value):
    result = command("--help", TINYAE_BACKEND=value)
    assert result.returncode == 0 and "usage: tinyae" in result.stdout and "Traceback" not in result.stderr
    result = command("train", "--epochs", "0", TINYAE_BACKEND=value)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_cupy_variable_without_a_usable_cupy_names_the_fix():
    if cupy_usable():
        pytest.skip("the cupy backend works here")
    result = command("gradcheck", "--only", "nothing", TINYAE_BACKEND="cupy")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "TINYAE_BACKEND=cupy" in result.stderr and "pip install" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{")
    quiet = command("sample", tmp_path / "run")
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr and "is not valid JSON" in quiet.stderr
    loud = command("sample", tmp_path / "run", TINYAE_DEBUG="1")
    assert loud.returncode == 1 and "Traceback" in loud.stderr and "RunError" in loud.stderr


def test_an_unexpected_error_is_one_line_naming_its_type(trained, capsys, monkeypatch):
    monkeypatch.setattr("tinyae.app.run.Run.samples", lambda run, *args, **kwargs: {}["boom"])
    code, err = outcome(["sample", trained], capsys)
    assert_one_line_error(code, err, 1, "unexpected KeyError: 'boom' (rerun with TINYAE_DEBUG=1")
    monkeypatch.setenv("TINYAE_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["sample", str(trained)])


# Bounded decompression of data files, and strict JSON ------------------------------------------------------

def gzip_bomb(path: Path, declared_images: int, megabytes: int) -> None:
    """An IDX images file whose header declares ``declared_images`` 28x28 images, gzipped, followed by
    ``megabytes`` MB of zeros (a few hundred KB on disk)."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    header = bytes([0, 0, 8, 3]) + np.array([declared_images, 28, 28], ">u4").tobytes()
    parts = [compressor.compress(header + bytes(784 * declared_images))]
    block = bytes(1 << 20)
    parts += [compressor.compress(block) for _ in range(megabytes)]
    path.write_bytes(b"".join(parts) + compressor.flush())


def test_a_gzip_bomb_is_refused_reading_no_more_than_its_header_declares(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    gzip_bomb(path, 10, 300)
    with peak_memory() as peak, pytest.raises(DataError, match="need 7840 bytes .* more than 65536 bytes follow"):
        idx.read_idx(path, ndim=3)
    assert peak[0] < 4 << 20  # the 300 MB it would decompress to are never held


def test_a_header_declaring_more_than_allowed_is_refused_before_reading(tmp_path):
    path = tmp_path / "images.gz"
    gzip_bomb(path, 10, 0)
    with pytest.raises(DataError, match="declares dimensions 10x28x28 .7856 bytes., more than the 1000"):
        idx.read_bytes(path, max_size=1000)


def test_eval_json_is_strict_json():
    report = {"kl": float("nan"), "parts": [1.0, float("inf"), -float("inf")], "ok": 2.5}
    text = json.dumps(json_safe(report), allow_nan=False)
    assert json.loads(text) == {"kl": None, "parts": [1.0, None, None], "ok": 2.5}


def test_eval_writes_strict_json(run_copy, capsys):
    assert outcome(["eval", run_copy, "-k", "2", "--quiet"], capsys)[0] == 0
    text = (run_copy / "eval.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"eval.json holds {name}"))


def test_at_least_100_cases():
    count = (len(USAGE) + len(CHECKPOINT_DAMAGE) + len(CONFIG_DAMAGE) + len(METRICS_DAMAGE))
    assert count >= 100
