"""β-VAE: the VAE's KL term weighted by β, swept over β ∈ {0.5, 1, 4}.

    loss = E_q[−log p_φ(x|z)] + β·KL(q_θ(z|x) ‖ N(0, I))

The KL is the number of nats the code carries about x (the "rate"); the reconstruction term is the
"distortion". β < 1 buys sharper reconstructions with a more informative code that strays from the prior,
so samples from N(0, I) get worse; β > 1 squeezes the code towards the prior: blurrier reconstructions,
smoother samples, and (the β-VAE paper's motivation) latent dimensions that tend to vary independently.
Only β = 1 minimizes the −ELBO itself; for the others it is reported as recon + KL all the same.

Run: python examples/beta_vae.py [--limit N --epochs E --test-limit N --out DIR] [--betas 0.5 1 4]
"""

import matplotlib.pyplot as plt
import numpy as np
from _common import first_images, fit, mnist, parse_args, report

import tinyae
from tinyae import no_grad
from tinyae.app import figures
from tinyae.models import VAE

args = parse_args(__file__, __doc__.splitlines()[0], epochs=10, extra=lambda parser: parser.add_argument(
    "--betas", type=float, nargs="+", default=[0.5, 1, 4], help="the values of β (0.5 1 4)"))
training, test = mnist(args)
x = first_images(test, 12)

results, reconstructions, samples = {}, [x.numpy()], []
for beta in args.betas:
    tinyae.manual_seed(args.seed)  # the same initial weights for every β
    model = VAE(latent_dim=10, beta=beta)
    final = fit(model, training, test, args, name=f"β = {beta:g}")[-1]
    results[beta] = (final["test_recon"], final["test_kl"])
    with no_grad():
        reconstructions.append(model.decode(model.encode(x)[0]).sigmoid().numpy())  # g_φ(μ(x))
        tinyae.manual_seed(args.seed + 1)  # the same z ~ N(0, I) for every β
        samples.append(model.sample(24).numpy())

for beta, (recon, kl) in results.items():
    print(f"β = {beta:<4g} test reconstruction {recon:7.2f} + KL {kl:6.2f} = −ELBO {recon + kl:7.2f} nats")

# Reconstruction against KL: each β is one point of the rate–distortion trade-off.
figure, axis = plt.subplots(figsize=(5, 4))
kls, recons = [kl for _, kl in results.values()], [recon for recon, _ in results.values()]
axis.plot(kls, recons, "o-")
for beta, (recon, kl) in results.items():
    axis.annotate(f"β = {beta:g}", (kl, recon), textcoords="offset points", xytext=(6, 4))
axis.set(xlabel="KL(q(z|x) ‖ N(0, I))  (rate, nats per image)", ylabel="reconstruction −log p(x|z)  (nats)",
         title=f"test reconstruction vs KL per β\n({args.epochs} epochs on {training.num_images} images)")
axis.grid(alpha=0.3)
axis.margins(0.15)
paths = [figures.save(figure, args.out / "recon_vs_kl.png")]

labels = [f"β = {beta:g}" for beta in args.betas]
paths.append(figures.image_grid(np.concatenate(reconstructions), args.out / "reconstructions.png", columns=12,
                                row_labels=["test digit", *labels], title="reconstructions g_φ(μ(x)) per β"))
paths.append(figures.image_grid(np.concatenate(samples), args.out / "samples.png", columns=12,
                                row_labels=[label for label in labels for _ in range(2)],
                                title="samples from N(0, I) per β (two rows each, the same z for every β)"))
report(paths)
