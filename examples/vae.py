"""The variational autoencoder with a 10-dimensional latent space (the tutorial's example).

The encoder f_θ gives, for each image, a Gaussian q_θ(z|x) = N(μ(x), diag σ²(x)) over z ∈ R¹⁰; a code is
drawn as z = μ(x) + σ(x) ⊙ ε with ε ~ N(0, I) (the reparameterization trick: the randomness is in ε, so
gradients flow through μ and σ); the decoder g_φ gives the Bernoulli probabilities p_φ(x|z) of the pixels.
Training minimizes the negative ELBO per image,

    −ELBO(x) = E_q[−log p_φ(x|z)] + KL(q_θ(z|x) ‖ N(0, I))      (reconstruction + KL, in nats),

an upper bound on −log p(x). Because the KL keeps every q(z|x) close to N(0, I), decoding z ~ N(0, I)
gives new digits: the model is generative, not only a compressor.

Run: python examples/vae.py [--limit N --epochs E --test-limit N --out DIR]
"""

from _common import first_images, fit, mnist, parse_args, report

import tinyae
from tinyae.app import figures
from tinyae.models import VAE

args = parse_args(__file__, __doc__.splitlines()[0], epochs=15)
training, test = mnist(args)

tinyae.manual_seed(args.seed)  # the weights and every ε drawn below
model = VAE(hidden=400, latent_dim=10)  # 784 → 400 → (μ, log σ²) ∈ R¹⁰ × R¹⁰;  z ∈ R¹⁰ → 400 → 784
history = fit(model, training, test, args, name="VAE d=10")

final = history[-1]  # fit evaluates the test set after each epoch (one z per image)
print(f"test −ELBO {final['test_loss']:.2f} nats per image = reconstruction {final['test_recon']:.2f} "
      f"+ KL {final['test_kl']:.2f}  ({test.num_images} test images, {training.num_images} training images, "
      f"{args.epochs} epochs)")

paths = [
    # test digits (odd rows) and their reconstructions g_φ(μ(x)) (even rows)
    figures.reconstructions(model, first_images(test, 32), args.out / "reconstructions.png"),
    # new digits: z ~ N(0, I) decoded; they look like digits only where the prior meets the posteriors
    figures.samples(model, 64, args.out / "samples.png"),
    # −ELBO, reconstruction and KL per epoch, on the training and the test images
    figures.loss_curves(history, args.out / "loss.png"),
]
report(paths)
