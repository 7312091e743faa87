"""Denoising autoencoders: the encoder sees a corrupted x̃, the loss compares g_φ(f_θ(x̃)) with the clean x.

Two corruptions, each drawn afresh for every batch (DenoisingAE.corrupt, in training mode only):
    Gaussian:  x̃ = x + σ·ε, ε ~ N(0, I)                 (σ = 0.5: the digit is barely visible)
    masking:   each pixel of x set to 0 with probability p  (p = 0.5: half the strokes are erased)
Having to undo the noise, the code must capture what digits look like, not copy pixels.

The figures show, per corruption, test digits (clean), their corrupted versions, and the network's output.

Run: python examples/denoising_autoencoder.py [--limit N --epochs E --test-limit N --out DIR]
"""

import numpy as np
from _common import first_images, fit, mnist, parse_args, report

import tinyae
from tinyae import no_grad
from tinyae.app import figures
from tinyae import functional as F
from tinyae.models import DenoisingAE

args = parse_args(__file__, __doc__.splitlines()[0], epochs=10)
training, test = mnist(args)
noises = {"gaussian": 0.5, "mask": 0.5}  # noise → its level: σ for gaussian, p for mask
paths = []

for noise, level in noises.items():
    tinyae.manual_seed(args.seed)  # seeds the weights and the noise drawn during training
    model = DenoisingAE(latent_dim=32, noise=noise, noise_level=level)
    fit(model, training, test, args, name=noise)  # its test loss: clean inputs (eval mode adds no noise)

    # Denoising the test set: corrupt each test image once (the same noise for a given --seed), then
    # measure the squared error per image, against the clean images, of the noisy input and of the output.
    tinyae.manual_seed(args.seed + 1)
    noisy_error = denoised_error = 0.0
    with no_grad():
        for x in test:
            noisy = model.corrupt(x)
            noisy_error += F.mse_loss(noisy.clip(0, 1), x, reduction="sum").item() / test.num_images
            denoised_error += F.mse_loss(model(noisy).sigmoid(), x, reduction="sum").item() / test.num_images
        print(f"{noise} noise, level {level}: squared error per test image {noisy_error:.1f} (noisy input) "
              f"→ {denoised_error:.1f} (denoised)")

        # The figure: 12 test digits, clean / corrupted / denoised.
        tinyae.manual_seed(args.seed + 2)
        x = first_images(test, 12)
        noisy = model.corrupt(x)
        rows = [x.numpy(), np.clip(noisy.numpy(), 0, 1), model(noisy).sigmoid().numpy()]
    paths.append(figures.image_grid(
        np.concatenate(rows), args.out / f"{noise}.png", columns=12,
        row_labels=["clean", "noisy", "denoised"],
        title=f"{noise} noise ({'σ' if noise == 'gaussian' else 'p'} = {level}): test digits, "
              f"corrupted, and the output"))
report(paths)
