"""Where tinyae leads and where BLAS takes over: the MLP VAE's training step over batch sizes and widths,
tinyae vs PyTorch.

    python bench/scaling.py [--threads 2] [--pairs 5] [--batches 32 128 512] [--hidden 400 1024] [--plot FILE]

The VAE 784-H-20 (H: ``--hidden``) on the first B MNIST training images (B: ``--batches``), Adam 1e-3,
BCE-with-logits summed + KL. Each framework runs in processes of its own (bench/common.py's harness,
``--pairs`` alternating pairs), a process timing every case (after a warm-up, rounds of about 0.15 s, the
median round). Prints a Markdown table per thread count: each side's median step time and the median of
the per-pair ratios tinyae / PyTorch with their range; and draws them (default bench/scaling.png): step
time against batch size, and the ratio with its range. At small batches a step is mostly framework
overhead, where tinyae's compiled elementwise kernels and lean engine lead; as the batch and the layers
grow, the matrix products dominate and the two BLAS libraries (NumPy's OpenBLAS, PyTorch's MKL) decide.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import Race, Worker, WorkerError, machine, plural, progress, race, save_batch, timed

HERE = Path(__file__).resolve().parent


def case_name(batch: int, hidden: int) -> str:
    return f"batch {batch}, hidden {hidden}"


def tinyae_worker(data: str, cases: list[list[int]]) -> dict:
    import numpy as np

    import tinyae
    from common import tinyae_training_step
    from tinyae import models

    images, times = np.load(data), {}
    for batch, hidden in cases:
        tinyae.manual_seed(0)
        step = tinyae_training_step(models.VAE(hidden=hidden), tinyae.tensor(images[:batch]))
        times[case_name(batch, hidden)] = timed(step, warmup=5, rounds=5)
    return times


def torch_worker(data: str, cases: list[list[int]]) -> dict:
    import numpy as np
    import torch
    from common import torch_models, torch_training_step

    vae, _, loss = torch_models()
    images, times = torch.from_numpy(np.load(data)), {}
    for batch, hidden in cases:
        torch.manual_seed(0)
        step = torch_training_step(vae(hidden=hidden), loss, images[:batch].contiguous())
        times[case_name(batch, hidden)] = timed(step, warmup=5, rounds=5)
    return times


def plot(results: dict[int, Race], batches: list[int], widths: list[int], path: Path) -> None:
    """Step time against batch size (left) and tinyae / PyTorch with its range (right), a row per thread
    count; matplotlib's object API on an Agg canvas (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    sparse = FuncFormatter(lambda value, _: f"{value:g}" if f"{value:.0e}"[0] in "25" else "")  # minor ticks

    figure = Figure(figsize=(10, 3.6 * len(results)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(results), 2, squeeze=False)
    for (times_axes, ratio_axes), (threads, result) in zip(axes, results.items()):
        for index, hidden in enumerate(widths):
            names = [case_name(batch, hidden) for batch in batches]
            for framework, style in (("tinyae", "-o"), ("PyTorch", "--s")):
                times_axes.plot(batches, [result.median(framework, name) * 1e3 for name in names], style,
                                color=f"C{index}", label=f"{framework}, hidden {hidden}")
            spreads = [result.ratio("tinyae", "PyTorch", name) for name in names]
            ratio_axes.errorbar(batches, [s.median for s in spreads],
                                yerr=[[s.median - s.low for s in spreads],
                                      [s.high - s.median for s in spreads]],
                                fmt="-o", capsize=4, color=f"C{index}", label=f"hidden {hidden}")
        times_axes.set(xscale="log", yscale="log", xlabel="batch size", ylabel="step time (ms)",
                       title=f"MLP VAE 784-H-20 training step, {plural(threads, 'thread')}")
        times_axes.yaxis.set_major_formatter(plain)
        times_axes.yaxis.set_minor_formatter(sparse)
        ratio_axes.axhline(1.0, color="gray", linewidth=1)
        ratio_axes.set_ylim(0, max(1.1, ratio_axes.get_ylim()[1]))
        ratio_axes.set(xscale="log", xlabel="batch size", ylabel="tinyae / PyTorch step time",
                       title="below 1: tinyae faster (median of pairs, range)")
        for ax in (times_axes, ratio_axes):
            ax.set_xticks(batches, [str(batch) for batch in batches])
            ax.set_xticks([], minor=True)
            ax.legend(fontsize=8)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="thread counts (default: one per physical core)")
    parser.add_argument("--pairs", type=int, default=5, help="alternating pairs of processes (default 5)")
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--hidden", type=int, nargs="+", default=[400, 1024])
    parser.add_argument("--plot", type=Path, default=HERE / "scaling.png",
                        help="the figure (default %(default)s)")
    args = parser.parse_args()
    from tinyae.app.process import physical_cores

    if not 1 <= max(args.batches) <= 60000 or min(args.batches) < 1 or min(args.hidden) < 1:
        parser.error("--batches must be in 1..60000 and --hidden at least 1")
    thread_counts = args.threads or [physical_cores()]
    cases = [[batch, hidden] for hidden in args.hidden for batch in args.batches]
    results: dict[int, Race] = {}
    with tempfile.TemporaryDirectory() as folder:
        kwargs = dict(data=save_batch(folder, max(args.batches)), cases=cases)
        try:
            for threads in thread_counts:
                progress(f"{plural(threads, 'thread')}:")
                results[threads] = race([Worker("tinyae", "scaling:tinyae_worker", "tinyae", threads, kwargs),
                                         Worker("PyTorch", "scaling:torch_worker", "torch", threads, kwargs)],
                                        args.pairs, log=progress)
        except WorkerError as error:
            sys.exit(f"bench/scaling.py: {error}")
    print(f"MLP VAE 784-H-20 training step, Adam; each framework in its own processes, {args.pairs} "
          f"alternating pairs; ms: medians over the pairs; ratio: median of the per-pair ratios (range)\n")
    print("| threads | batch | hidden | tinyae ms | PyTorch ms | tinyae / PyTorch |")
    print("|---|---|---|---|---|---|")
    for threads, result in results.items():
        for batch, hidden in cases:
            name = case_name(batch, hidden)
            print(f"| {threads} | {batch} | {hidden} | {result.median('tinyae', name) * 1e3:.2f} | "
                  f"{result.median('PyTorch', name) * 1e3:.2f} | {result.ratio('tinyae', 'PyTorch', name)} |")
    plot(results, args.batches, args.hidden, args.plot)
    infos = {f"{name}, {plural(threads, 'thread')}": result.info(name)
             for threads, result in results.items() for name in ("tinyae", "PyTorch")}
    print(f"\nplot: {args.plot}\n\n" + machine(infos))


if __name__ == "__main__":
    main()
