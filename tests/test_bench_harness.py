"""bench/common.py's harness: contenders alternate in pairs, ratios are medians of per-pair ratios, a failing
worker is one line, and each worker process keeps to its framework and its thread count."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import common  # noqa: E402  (bench/common.py)
import step as bench_step  # noqa: E402  (bench/step.py)
from tests.conftest import BACKEND  # noqa: E402

pytestmark = pytest.mark.skipif(BACKEND == "strict", reason="run once, in the numpy run of the suite: the "
                                "harness does not depend on tinyae's backend")


def fake_result(seconds: float) -> dict:
    return {"times": {"step": seconds}, "info": {}}


def test_pairs_alternate_the_order():
    calls = []

    def run(worker):
        calls.append(worker.name)
        return fake_result(1.0)

    workers = [common.Worker(name, "x:y", "tinyae", 1) for name in ("a", "b", "c")]
    result = common.race(workers, pairs=4, run=run)
    assert calls == ["a", "b", "c", "c", "b", "a", "a", "b", "c", "c", "b", "a"]
    assert len(result.pairs) == 4 and all(sorted(pair) == ["a", "b", "c"] for pair in result.pairs)


def test_a_ratio_is_the_median_of_the_per_pair_ratios():
    ours, theirs = [1.0, 2.0, 3.0], [1.0, 4.0, 1.0]  # ratios 1, 0.5, 3; the ratio of the medians is 2
    result = common.Race([{"tinyae": fake_result(a), "PyTorch": fake_result(b)}
                          for a, b in zip(ours, theirs)])
    assert result.ratios("tinyae", "PyTorch", "step") == [1.0, 0.5, 3.0]
    assert result.ratio("tinyae", "PyTorch", "step") == common.Spread(1.0, 0.5, 3.0)
    assert f"{result.ratio('tinyae', 'PyTorch', 'step')}" == "1.00 (0.50–3.00)"
    assert result.median("tinyae", "step") == 2.0 and result.median("PyTorch", "step") == 1.0


def test_targets_compare_the_right_ratio_with_its_bound():
    def race(tinyae, torch, floor):
        return common.Race([{"tinyae": fake_result(tinyae), "PyTorch": fake_result(torch),
                             "floor": fake_result(floor)}])

    found = bench_step.targets({("mlp", 2): race(0.59, 1.0, 0.5), ("mlp", 1): race(0.81, 1.0, 0.7)})
    assert [line.split(" (")[0] for line, _ in found] == [  # the conv target was not measured
        "MLP VAE 784-400-20, 2 threads: tinyae / PyTorch 0.59",
        "MLP VAE 784-400-20, 1 thread: tinyae / PyTorch 0.81",
        "MLP VAE 784-400-20, 2 threads: tinyae / floor 1.18",
        "MLP VAE 784-400-20, 1 thread: tinyae / floor 1.16"]
    assert [holds for _, holds in found] == [True, False, True, True]  # ≤ 0.6, ≤ 0.8, ≤ 1.2, ≤ 1.2


def test_a_worker_environment_sets_the_threads_and_then_its_own_variables():
    torch = common.worker_environment(common.Worker("PyTorch", "x:y", "torch", 2))
    assert [torch[f"{name}_NUM_THREADS"] for name in ("OMP", "MKL", "OPENBLAS")] == ["2", "2", "1"]
    ours = common.worker_environment(common.Worker("tinyae", "x:y", "tinyae", 3, pythonpath=("/elsewhere",)))
    assert (ours["OMP_NUM_THREADS"], ours["OPENBLAS_NUM_THREADS"]) == ("3", "3")
    assert ours["PYTHONPATH"].split(os.pathsep)[0] == "/elsewhere"
    shared = common.Worker("PyTorch", "x:y", "torch", 2, env={"OPENBLAS_NUM_THREADS": "2"})
    assert common.worker_environment(shared)["OPENBLAS_NUM_THREADS"] == "2"


@pytest.fixture
def stub(tmp_path):
    """A module of worker functions in its own folder, put first on a worker's PYTHONPATH."""
    (tmp_path / "stub_bench.py").write_text(
        "import sys, time, types\n"
        "def fails():\n    raise ValueError('the stub failed on purpose')\n"
        "def sleeps():\n    time.sleep(30)\n"
        "def fakes_torch():\n    sys.modules['torch'] = types.ModuleType('torch')\n    return {}\n"
        "def imports_tinyae():\n    import tinyae\n    return {}\n"
        "def nothing():\n    return {}\n")
    return lambda function, framework="tinyae", threads=1: common.Worker(
        "stub", f"stub_bench:{function}", framework, threads, pythonpath=(str(tmp_path), str(REPO)))


def test_a_failing_worker_is_one_line_with_its_stderr_tail(stub):
    with pytest.raises(common.WorkerError) as error:
        common.run_worker(stub("fails"))
    assert "\n" not in str(error.value) and "Traceback" not in str(error.value)  # the last line only
    assert str(error.value).startswith("stub (stub_bench:fails) failed, exit status 1: ")
    assert str(error.value).endswith("ValueError: the stub failed on purpose")
    with pytest.raises(common.WorkerError, match=r"^stub \(stub_bench:sleeps\): no result within 1 s$"):
        common.run_worker(stub("sleeps"), timeout=1)


def test_a_tinyae_worker_that_imports_torch_fails(stub):
    with pytest.raises(common.WorkerError, match="the tinyae worker stub_bench:fakes_torch imported torch"):
        common.run_worker(stub("fakes_torch"))


def test_a_tinyae_worker_runs_on_its_threads(stub):
    result = common.run_worker(stub("nothing", threads=1))
    assert result["times"] == {} and result["info"]["tinyae"].startswith(str(REPO))
    assert result["info"]["pools"] and all(pool["num_threads"] == 1 for pool in result["info"]["pools"])
    assert "1 thread" in common.describe(result["info"])


@pytest.mark.torch
def test_the_pytorch_worker_never_imports_tinyae(stub, tmp_path):
    with pytest.raises(common.WorkerError, match="torch worker stub_bench:imports_tinyae imported tinyae"):
        common.run_worker(stub("imports_tinyae", "torch"))
    data = tmp_path / "batch.npy"
    np.save(data, np.random.default_rng(0).random((128, 784), dtype=np.float32))
    worker = common.Worker("PyTorch", "step:torch_worker", "torch", 2,
                           dict(model="mlp", data=str(data), warmup=1, rounds=1, steps=1))
    result = common.run_worker(worker)  # the worker itself checks that tinyae was not imported
    assert result["times"]["step"] > 0 and result["info"]["torch"]["threads"] == 2
    openblas = [pool for pool in result["info"]["pools"] if pool["internal_api"] == "openblas"]
    assert all(pool["num_threads"] == 1 for pool in openblas)  # NumPy's BLAS, unused there, has no threads
