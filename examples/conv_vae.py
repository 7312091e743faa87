"""A convolutional VAE whose decoder upsamples then convolves (ConvVAE(decoder="upsample")).

Encoder: two stride-2 4×4 convolutions (1×28×28 → 32×14×14 → 64×7×7), then two linear heads μ(x), log σ²(x).
Decoder: z → 64×7×7 → [nearest-neighbour upsample ×2, 3×3 conv] twice → 1×28×28 logits.

Why upsample + conv rather than a transposed convolution (decoder="transpose")? A stride-2 transposed conv
stamps its kernel at every other pixel; where kernel size and stride do not divide evenly the stamps
overlap unevenly and leave a checkerboard pattern that training must undo. Upsampling first spreads each
value evenly and the 3×3 conv that follows sees every output pixel the same way. Its price on a CPU: the
convolutions run at 14×14 and 28×28 with more channels, a few times slower than the transposed decoder,
hence the smaller default --limit (4000 images). The loss is the −ELBO, as for the MLP VAE (examples/vae.py).

Run: python examples/conv_vae.py [--limit N --epochs E --test-limit N --out DIR] [--decoder transpose]
"""

from _common import first_images, fit, mnist, parse_args, report

import tinyae
from tinyae.app import figures
from tinyae.models import ConvVAE

# batches of 16, not 128: a short run learns more from more (noisier) steps, at the same cost per image
args = parse_args(__file__, __doc__.splitlines()[0], limit=4000, epochs=3, test_limit=500, batch_size=16,
                  extra=lambda parser: parser.add_argument("--decoder", choices=["upsample", "transpose"],
                                                           default="upsample", help="to compare (upsample)"))
training, test = mnist(args, layout="image")  # batches of (B, 1, 28, 28) images instead of (B, 784)

tinyae.manual_seed(args.seed)
model = ConvVAE(latent_dim=10, decoder=args.decoder)  # two linear heads μ, log σ² on the 64·7·7 features
history = fit(model, training, test, args, name="conv VAE")

final = history[-1]
print(f"{args.decoder} decoder: test −ELBO {final['test_loss']:.2f} nats per image = reconstruction "
      f"{final['test_recon']:.2f} + KL {final['test_kl']:.2f}  ({args.epochs} epochs, {training.num_images} images)")
paths = [
    figures.reconstructions(model, first_images(test, 32), args.out / "reconstructions.png"),
    figures.samples(model, 64, args.out / "samples.png"),
    figures.loss_curves(history, args.out / "loss.png"),
]
report(paths)
