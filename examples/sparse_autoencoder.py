"""Sparse autoencoders: a 64-unit code (wider than needed) pushed to use few units per image.

    L1:  loss = recon + λ·Σ_j |z_j|                  each image's code is pulled towards 0, unit by unit;
    KL:  z = sigmoid(f_θ(x)),  ρ̂_j = mean of z_j over the batch,
         loss = recon + λ·Σ_j KL(ρ ‖ ρ̂_j)              each unit is pushed to be active on a fraction ρ of the
                                                      images (ρ = 0.05), i.e. to be off for most of them.

Both are compared with λ = 0. "Near zero" is measured per image, relative to its strongest unit
(|z_j| < 10% of max_k |z_k|): an L1 penalty on an unbounded code can also be lowered by shrinking the whole
code while the decoder's weights grow to compensate, which an absolute threshold would count as sparsity.

Run: python examples/sparse_autoencoder.py [--limit N --epochs E --test-limit N --out DIR]
"""

import matplotlib.pyplot as plt
import numpy as np
from _common import fit, mnist, parse_args, report

import tinyae
from tinyae import no_grad
from tinyae.app import figures
from tinyae.models import SparseAE

args = parse_args(__file__, __doc__.splitlines()[0], epochs=5)
training, test = mnist(args)

# name → constructor arguments. λ is per image: recon is ~100 nats, so λ ≈ 1 is what makes a difference
# (with λ = 3, most L1 code units are off, but reconstructions get much worse and some units die).
settings = {
    "no penalty": {"penalty": "l1", "sparsity": 0.0},
    "L1": {"penalty": "l1", "sparsity": 1.0},
    "KL": {"penalty": "kl", "sparsity": 1.0, "rho": 0.05},
}
titles = {"no penalty": "no penalty (λ = 0)", "L1": "L1 penalty, λ = 1", "KL": "KL sparsity, ρ = 0.05, λ = 1"}
codes, recon = {}, {}
for name, config in settings.items():
    tinyae.manual_seed(args.seed)
    model = SparseAE(latent_dim=64, **config)
    history = fit(model, training, test, args, name=name)
    recon[name] = history[-1]["test_recon"]
    with no_grad():  # the codes of every test image (N, 64): linear for L1, in (0, 1) after the KL sigmoid
        codes[name] = np.concatenate([np.abs(model.encode(x).numpy()) for x in test])

# Codes of 40 test digits, sorted by their label, as a heat map (rows: images, columns: units, sorted by
# their mean activation); below, the histogram of each unit's mean activation over the test set.
order = np.argsort(test.labels, kind="stable")[:: max(1, len(test.labels) // 40)][:40]
figure, axes = plt.subplots(2, len(codes), figsize=(4.2 * len(codes), 7), height_ratios=[3, 2])
for column, (name, z) in enumerate(codes.items()):
    per_unit = z.mean(axis=0)
    off = (z < 0.1 * z.max(axis=1, keepdims=True)).mean()  # the fraction of near-zero code units
    image = axes[0, column].imshow(z[order][:, np.argsort(-per_unit)], aspect="auto", cmap="magma",
                                   interpolation="nearest", vmin=0, vmax=np.quantile(z, 0.99))  # no outliers
    figure.colorbar(image, ax=axes[0, column], label="|z_j| (top 1% clipped)")
    axes[0, column].set(title=f"{titles[name]}\n{off:.0%} near zero, recon {recon[name]:.1f} nats",
                        xlabel="code unit (most active first)", ylabel="test digit (sorted by label)")
    starts = np.flatnonzero(np.diff(test.labels[order], prepend=-1))  # the first row of each digit
    axes[0, column].set_yticks(starts, test.labels[order][starts])
    axes[1, column].hist(per_unit, bins=20, color="tab:blue")
    if "rho" in settings[name]:
        axes[1, column].axvline(settings[name]["rho"], color="tab:red", linestyle="--", label="target ρ")
        axes[1, column].legend()
    axes[1, column].set(xlabel="mean |z_j| over the test set", ylabel="code units")
    print(f"{name:>10}: {off:.1%} of code units near zero, test reconstruction {recon[name]:.2f} nats")
figure.suptitle(f"codes of sparse autoencoders ({args.epochs} epochs on {training.num_images} images)")
figure.tight_layout()
report([figures.save(figure, args.out / "codes.png")])
