"""Crash consistency, proven: real ``tinyae train`` processes are killed with SIGKILL at random instants and
at every named write point of ``tinyae.app.run`` (inside the metrics append, between the metrics line and
the checkpoint, inside the checkpoint's write, inside config.json's write and inside the repair of
metrics.jsonl), then continued with the same command until it succeeds. Every trial must end bit for bit
where an uninterrupted run ends: the metrics lines (less their wall-clock "seconds"; with the gradient
norms of --log-grad-norms), the weights, the
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
OPTIONS = ["--epochs", "3", "--limit", "1200", "--test-limit", "200", "--batch-size", "10", "--hidden", "32",
           "--latent-dim", "4", "--log-grad-norms", "--quiet"]  # 120 steps an epoch: a tenth of a second
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
    """The state an uninterrupted run ends in, and its timing: (state, (seconds until the run folder
    appears, seconds in all))."""
    out = tmp_path_factory.mktemp("crash") / "straight"
    started = time.perf_counter()
    process = subprocess.Popen(command(out, "out"), env=environment(), stdout=subprocess.DEVNULL)
    while not (out / "config.json").exists() and process.poll() is None:
        time.sleep(0.005)
    startup = time.perf_counter() - started
    assert process.wait(timeout=120) == 0
    return finished_state(out), (startup, time.perf_counter() - started)


def plan(trial: int, timing: tuple[float, float]) -> tuple[list, str]:
    """The kills of one trial (named points, or instants after the start in seconds: a third of them before
    the run folder appears, the others while it trains and draws) and the resume form."""
    draw = random.Random(trial)
    startup, seconds = timing

    def instant():
        return ("time", draw.uniform(0.05, startup) if draw.random() < 1 / 3 else draw.uniform(startup, seconds))

    form = "resume" if trial % 2 else "out"
    if trial < len(NAMED):
        return [("point", point) for point in NAMED[trial]], form
    if trial % 4 == 3:  # a named point at a random epoch, then a random instant
        point = draw.choice(["metrics-append", "metrics-appended", "checkpoint-write"])
        return [("point", f"{point}:{draw.randint(1, 3)}"), instant()], form
    return [instant() for _ in range(draw.randint(1, 3))], form


def left_behind(out: Path) -> str:
    """What a kill left in the folder: how far the checkpoint got, and what a resume must repair."""
    if not out.exists():
        return "no folder"
    files = {path.name for path in out.iterdir()}
    saved = checkpoint.load(out / "checkpoint.npz")["epoch"] if "checkpoint.npz" in files else None
    state = "no config" if "config.json" not in files else f"checkpoint {saved}" if saved else "no checkpoint"
    text = (out / "metrics.jsonl").read_text() if "metrics.jsonl" in files else ""
    extra = [".tmp" for name in files if name.endswith(".tmp")][:1]
    extra += ["torn line"] if text and not text.endswith("\n") else []
    extra += ["metrics ahead"] if text.count("\n") > (saved or 0) else []
    return ", ".join([state, *extra])


def run_trial(trial: int, folder: Path, timing: tuple[float, float]) -> tuple[list, list[int], list[str]]:
    """Kill as planned, then continue with the same command until it succeeds; (kills, their exit codes,
    what each left behind)."""
    out = folder / f"trial-{trial}"
    kills, form = plan(trial, timing)
    codes, left = [], []
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
        left.append(left_behind(out))
    result = subprocess.run(command(out, form), env=environment(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"trial {trial} ({kills}): {result.stderr[-2000:]}"
    return kills, codes, left


def test_runs_killed_at_any_instant_resume_to_bit_identical_results(uninterrupted, tmp_path):
    reference, timing = uninterrupted
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {trial: pool.submit(run_trial, trial, tmp_path, timing) for trial in range(TRIALS)}
        outcomes = {trial: future.result() for trial, future in futures.items()}
    killed_at_random = 0
    for trial, (kills, codes, left) in outcomes.items():
        print(f"trial {trial}: " + "; ".join(f"{value if kind == 'point' else f'{value:.2f} s'} -> "
                                               f"{'killed' if code == -9 else f'exit {code}'}, left {what}"
                                               for (kind, value), code, what in zip(kills, codes, left)))
        for (kind, value), code in zip(kills, codes):
            if kind == "point":  # every named point was reached and killed the process
                assert code == -9, f"trial {trial}: {value} exited {code} (the point was never reached)"
            killed_at_random += kind == "time" and code == -9
        state = finished_state(tmp_path / f"trial-{trial}")
        assert_identical(state, reference, f"trial {trial} ({kills})")
    random_kills = sum(kind == "time" for kills, *_ in outcomes.values() for kind, _ in kills)
    assert killed_at_random >= random_kills // 2  # the instants fell inside the runs, mostly
