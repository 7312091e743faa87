"""The plain autoencoder, x → z = f_θ(x) → x̂ = sigmoid(g_φ(z)), trained with two reconstruction losses.

    MSE:  Σ_pixels (x − x̂)²                              (a Gaussian likelihood with fixed variance)
    BCE:  −Σ_pixels [x log x̂ + (1 − x) log(1 − x̂)]       (a Bernoulli likelihood of each pixel)

Both are minimized by x̂ = x, but they weigh errors differently: BCE's gradient in the logits is x̂ − x,
while MSE's is 2(x̂ − x)·x̂(1 − x̂), which vanishes where the sigmoid saturates, so MSE learns the nearly
black-and-white MNIST pixels more slowly. The figures compare the two on both measures.

Run: python examples/autoencoder.py [--limit N --epochs E --test-limit N --out DIR]
"""

import matplotlib.pyplot as plt
import numpy as np
from _common import first_images, fit, mnist, parse_args, report

import tinyae
from tinyae import no_grad
from tinyae.app import figures
from tinyae import functional as F
from tinyae.models import AE

args = parse_args(__file__, __doc__.splitlines()[0], epochs=5)
training, test = mnist(args)


@no_grad()
def both_errors(model) -> dict:
    """Test error per image measured both ways, whatever the model was trained with."""
    squared = bce = 0.0
    for x in test:
        logits = model(x)
        squared += F.mse_loss(logits.sigmoid(), x, reduction="sum").item()
        bce += F.binary_cross_entropy_with_logits(logits, x, reduction="sum").item()
    return {"squared error": squared / test.num_images, "BCE": bce / test.num_images}


models, errors = {}, {}
for loss in ("mse", "bce"):
    tinyae.manual_seed(args.seed)  # the same initial weights for both: only the loss differs
    models[loss] = AE(latent_dim=20, reconstruction=loss)
    # after each epoch, measure the test error both ways (on_epoch adds them to the epoch's record)
    errors[loss] = fit(models[loss], training, test, args, name=f"AE ({loss})",
                       on_epoch=lambda model, record: record.update(both_errors(model)))

# Reconstructions: the same 12 test digits, then each model's reconstruction of them.
x = first_images(test, 12)
rows = [x.numpy()] + [models[loss](x).sigmoid().numpy() for loss in ("mse", "bce")]
paths = [figures.image_grid(np.concatenate(rows), args.out / "reconstructions.png", columns=12,
                            row_labels=["test digit", "AE (MSE)", "AE (BCE)"],
                            title=f"reconstructions ({args.epochs} epochs on {training.num_images} images)")]

# The losses: each measure on the test set, per epoch, for both models.
figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
for axis, measure in zip(axes, ("squared error", "BCE")):
    for loss, style in (("mse", "-o"), ("bce", "--s")):
        axis.plot(range(1, args.epochs + 1), [record[measure] for record in errors[loss]], style,
                  label=f"trained on {loss.upper()}")
    axis.set(xlabel="epoch", ylabel=f"test {measure} per image", title=f"test {measure}",
             xticks=range(1, args.epochs + 1))
    axis.grid(alpha=0.3)
    axis.legend()
paths.append(figures.save(figure, args.out / "losses.png"))

for loss in ("mse", "bce"):
    final = errors[loss][-1]
    print(f"trained on {loss.upper()}: test squared error {final['squared error']:.2f}, "
          f"BCE {final['BCE']:.2f} per image")
report(paths)
