"""Walking in a VAE's latent space: interpolation between test digits, and latent arithmetic.

A VAE (d = 10) is trained briefly here; each image x is then represented by its posterior mean μ(x), and
any code z ∈ R¹⁰ can be decoded into an image sigmoid(g_φ(z)). Because the KL term packs the codes of all
training images around N(0, I) without holes, codes between and near them decode to plausible digits:

1. interpolation: for two test digits a and b, decode z_t = (1 − t)·μ(a) + t·μ(b) for t from 0 to 1;
2. class arithmetic, "3 → 8": m_c = the mean code of the test images of digit c; the vector m_8 − m_3 points
   from the "3" region to the "8" region, so μ(x) + α·(m_8 − m_3) moves a 3 towards the 8s as α goes
   0 → 1, keeping what is particular to x (slant, thickness); the path may pass through other digits' regions
   (often 9s here: a short-trained 10-D code is not linear in what we call "digit");
3. an attribute vector, "thick − thin": within each digit class, compare the mean code of the quarter of
   images with the most ink (thick strokes) with that of the quarter with the least; averaged over the
   classes this difference carries stroke thickness but not digit identity. μ(x) + α·v thickens (α > 0)
   or thins (α < 0) any digit.

Run: python examples/latent_interpolation.py [--limit N --epochs E --test-limit N --out DIR]
"""

import numpy as np
from _common import fit, mnist, parse_args, report

import tinyae
from tinyae import no_grad
from tinyae.app import figures
from tinyae.models import VAE

args = parse_args(__file__, __doc__.splitlines()[0], epochs=10)
training, test = mnist(args)
tinyae.manual_seed(args.seed)
model = VAE(latent_dim=10)
fit(model, training, test, args, name="VAE d=10")

with no_grad():  # μ(x) of every test image, on the host: (N, 10)
    codes = np.concatenate([model.encode(x)[0].numpy() for x in test])
    images = np.concatenate([x.numpy() for x in test])
labels = test.labels
if len(np.unique(labels)) < 10:
    raise SystemExit(f"--test-limit {args.test_limit}: too few test images to hold every digit (try 100)")


@no_grad()
def decode(z: np.ndarray) -> np.ndarray:
    """Images sigmoid(g_φ(z)) for host codes z (n, 10)."""
    return model.decode(tinyae.tensor(z.astype(np.float32))).sigmoid().numpy()


def first_of(digit: int, count: int = 1) -> np.ndarray:
    """Indices of the first ``count`` test images of a digit (fewer if the test set has fewer)."""
    return np.flatnonzero(labels == digit)[:count]


paths = []
# 1. Interpolation between pairs of test digits (columns: a, then t = 0 … 1, then b).
t = np.linspace(0, 1, 9)[:, None]
rows = []
for a, b in [(1, 7), (3, 8), (4, 9), (0, 6), (2, 5)]:
    ia, ib = first_of(a)[0], first_of(b)[0]
    rows += [images[ia][None], decode((1 - t) * codes[ia] + t * codes[ib]), images[ib][None]]
paths.append(figures.image_grid(np.concatenate(rows), args.out / "interpolation.png", columns=len(t) + 2,
                                column_labels=["a", *[f"t={v:.2g}" for v in t.ravel()], "b"],
                                title="decoded (1 − t)·μ(a) + t·μ(b) between pairs of test digits"))

# 2. "3 → 8": add α·(m_8 − m_3) to the codes of a few 3s.
alphas = np.linspace(0, 1.5, 7)
direction = codes[labels == 8].mean(axis=0) - codes[labels == 3].mean(axis=0)
rows = [np.concatenate([images[i][None], decode(codes[i] + alphas[:, None] * direction)])
        for i in first_of(3, 5)]
paths.append(figures.image_grid(np.concatenate(rows), args.out / "three_to_eight.png", len(alphas) + 1,
                                column_labels=["test 3", *[f"α={v:.2g}" for v in alphas]],
                                title="μ(x) + α·(m₈ − m₃): class means move a 3 towards an 8"))

# 3. "thick − thin": the attribute vector, from the ink of each image within its class.
ink = images.reshape(len(images), -1).mean(axis=1)
differences = []
for digit in range(10):
    mine = labels == digit
    low, high = np.quantile(ink[mine], [0.25, 0.75])  # the least and most inked quarters of this digit
    differences.append(codes[mine & (ink >= high)].mean(axis=0) - codes[mine & (ink <= low)].mean(axis=0))
thickness = np.mean(differences, axis=0)
alphas = np.linspace(-2, 2, 9)
rows = [decode(codes[first_of(digit)[0]] + alphas[:, None] * thickness) for digit in (0, 2, 4, 7, 9)]
paths.append(figures.image_grid(np.concatenate(rows), args.out / "thickness.png", columns=len(alphas),
                                column_labels=[f"α={v:+.1f}" for v in alphas],
                                title="μ(x) + α·(thick − thin): one vector thins or thickens any digit"))
print(f"‖m₈ − m₃‖ = {np.linalg.norm(direction):.2f}, ‖thick − thin‖ = {np.linalg.norm(thickness):.2f} "
      f"(the codes of the test set have a mean norm of {np.linalg.norm(codes, axis=1).mean():.2f})")
report(paths)
