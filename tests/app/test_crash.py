"""Crash consistency, proven: real ``tinyae train`` processes are killed with SIGKILL at random instants and
at every named write point of ``tinyae.app.run`` (inside the metrics append, between the metrics line and
the checkpoint, inside the checkpoint's write, inside config.json's write and inside the repair of
metrics.jsonl), then continued with the same command until it succeeds. Every trial must end bit for bit
where an uninterrupted run ends: the metrics lines (less their wall-clock "seconds"), the weights, the
optimizer's state, the data order's generator and the epoch count.

10 trials by default; ``TINYAE_CRASH_TRIALS=30 python -m pytest tests/app/test_crash.py`` runs more.
"""

import concurrent.futures
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyae.app import checkpoint
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND == "strict", reason="the command trains on numpy; run once")

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = ["--epochs", "3", "--limit", "600", "--test-limit", "100", "--batch-size", "50", "--hidden", "32",
           "--latent-dim", "4", "--quiet"]
TRIALS = int(os.environ.get("TINYAE_CRASH_TRIALS", "10"))
# Kills at named points: NAME:N kills the N-th time the process reaches NAME. Runs of several kills are
# applied to consecutive invocations (the second one kills the process that repairs what the first left).
NAMED = [
    ["config-write:1"],
    ["metrics-append:1"],  # a torn first line and no checkpoint: the run starts again from epoch 0
    ["metrics-appended:2", "metrics-rewrite:1"],  # a line ahead of the checkpoint; the repair killed too
    ["checkpoint-write:1"],  # a stale checkpoint .tmp and no checkpoint yet
    ["metrics-append:3", "metrics-rewrite:1"],
    ["checkpoint-write:3"],
    ["metrics-appended:1", "checkpoint-write:1", "metrics-rewrite:1"],
]


def command(out: Path, form: str) -> list[str]:
    """The original command (``--out``), or ``--resume`` once the folder holds a run."""
    if form == "resume" and (out / "config.json").exists():
        return [sys.executable, "-m", "tinyae", "train", "--resume", str(out), "--epochs", "3", "--quiet"]
    return [sys.executable, "-m", "tinyae", "train", *OPTIONS, "--out", str(out)]


def environment(kill_at: str | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TINYAE_BACKEND="numpy")
    env.pop("TINYAE_TEST_KILL_AT", None)
    if kill_at is not None:
        env["TINYAE_TEST_KILL_AT"] = kill_at
    return env


def finished_state(out: Path) -> dict:
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for record in metrics:
        record.pop("seconds")
    saved = checkpoint.load(out / "checkpoint.npz")
    return {"metrics": metrics, "epoch": saved["epoch"], "model": saved["model"],
            "optimizer": saved["optimizer"], "files": sorted(path.name for path in out.iterdir())}


def assert_identical(a, b, where="") -> None:
    """Equal bit for bit: arrays by dtype, shape and every bit (NaN included), the rest by ==."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes(), f"{where}: arrays differ"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {list(a)} vs {list(b)}"
        for key in a:
            assert_identical(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{index}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("crash") / "straight"
    started = time.perf_counter()
    subprocess.run(command(out, "out"), env=environment(), check=True, capture_output=True, timeout=120)
    return finished_state(out), time.perf_counter() - started


def plan(trial: int, seconds: float) -> tuple[list, str]:
    """The kills of one trial (named points, or instants after the start in seconds) and the resume form."""
    draw = random.Random(trial)
    form = "resume" if trial % 2 else "out"
    if trial < len(NAMED):
        return [("point", point) for point in NAMED[trial]], form
    if trial % 4 == 3:  # a named point at a random epoch, then random instants
        point = draw.choice(["metrics-append", "metrics-appended", "checkpoint-write"])
        return [("point", f"{point}:{draw.randint(1, 3)}"), ("time", draw.uniform(0.1, seconds))], form
    return [("time", draw.uniform(0.1, seconds)) for _ in range(draw.randint(1, 3))], form


def run_trial(trial: int, folder: Path, seconds: float) -> tuple[list, list[int]]:
    """Kill as planned, then continue with the same command until it succeeds; (kills, their exit codes)."""
    out = folder / f"trial-{trial}"
    kills, form = plan(trial, seconds)
    codes = []
    for kind, value in kills:
        if kind == "point":
            result = subprocess.run(command(out, form), env=environment(value), capture_output=True,
                                    timeout=120)
            codes.append(result.returncode)
        else:
            process = subprocess.Popen(command(out, form), env=environment(), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            try:
                process.wait(timeout=value)
            except subprocess.TimeoutExpired:
                process.kill()
            codes.append(process.wait())
    result = subprocess.run(command(out, form), env=environment(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"trial {trial} ({kills}): {result.stderr[-2000:]}"
    return kills, codes


def test_runs_killed_at_any_instant_resume_to_bit_identical_results(uninterrupted, tmp_path):
    reference, seconds = uninterrupted
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {trial: pool.submit(run_trial, trial, tmp_path, seconds) for trial in range(TRIALS)}
        outcomes = {trial: future.result() for trial, future in futures.items()}
    killed_at_random = 0
    for trial, (kills, codes) in outcomes.items():
        for (kind, value), code in zip(kills, codes):
            if kind == "point":  # every named point was reached and killed the process
                assert code == -9, f"trial {trial}: {value} exited {code} (the point was never reached)"
            killed_at_random += kind == "time" and code == -9
        state = finished_state(tmp_path / f"trial-{trial}")
        assert_identical(state, reference, f"trial {trial} ({kills})")
    random_kills = sum(kind == "time" for kills, _ in outcomes.values() for kind, _ in kills)
    assert killed_at_random >= random_kills // 2  # the instants fell inside the runs, mostly
