"""An MNIST VAE trained by backprop written out by hand: plain arrays, no tape, every equation visible.

The model and loss are exactly ``tinyae.models.VAE`` (784-400-20, ReLU), in the notation of
docs/backprop.md §14.6: for a batch X (N×D) and noise E (N×d), with each layer fc(v) = v Wᵀ + b,

    U₁ = X W₁ᵀ + b₁,  H = relu(U₁),  M = H W₂₁ᵀ + b₂₁,  Λ = H W₂₂ᵀ + b₂₂,  S = exp(½Λ),  Z = M + S ⊙ E,
    U₃ = Z W₃ᵀ + b₃,  H₃ = relu(U₃),  A = H₃ W₄ᵀ + b₄,
    L = (1/N) Σ ℓ_BCE(A, X) + (β/N) Σ ½(M² + e^Λ − Λ − 1)     (the negative ELBO per image for β = 1)

and v̄ = ∂L/∂v for every array v. The arrays are NumPy's, CuPy's or the strict backend's (``xp`` is the
module of the data); tinyae only loads and batches MNIST. tests/test_vae_by_hand.py checks the gradients
against tinyae's autograd (they agree to ~1e-16 in float64) and the Adam step against tinyae.optim.Adam.

Run: python examples/vae_by_hand.py                     (one epoch: ~15 s on one CPU core)
     python examples/vae_by_hand.py --limit 2000 --backend cupy
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tinyae import backend
from tinyae.data import Batches, load_mnist

SIZES = (784, 400, 20)  # D pixels, hidden width, d latent dimensions
LAYERS = {"fc1": (0, 1), "fc21": (1, 2), "fc22": (1, 2), "fc3": (2, 1), "fc4": (1, 0)}  # (in, out) in SIZES


def init_params(rng: np.random.Generator, xp=np, dtype=np.float32, sizes=SIZES) -> dict:
    """PyTorch's Linear init, W, b ~ U(±1/√in), drawn on the host; keys are VAE's state_dict names."""
    params = {}
    for layer, (width_in, width_out) in LAYERS.items():
        fan_in, fan_out = sizes[width_in], sizes[width_out]
        bound = 1 / np.sqrt(fan_in)
        for name, shape in (("weight", (fan_out, fan_in)), ("bias", (fan_out,))):
            params[f"{layer}.{name}"] = xp.asarray(rng.uniform(-bound, bound, shape).astype(dtype))
    return params


def sigmoid(a):
    """sigmoid(a) from e = exp(−|a|) ≤ 1 (never overflows): 1/(1 + e) for a ≥ 0, e/(1 + e) for a < 0."""
    xp = backend.array_module(a)
    e = xp.exp(-abs(a))
    return xp.where(a >= 0, 1 / (1 + e), e / (1 + e))


def forward(params: dict, x, eps, beta: float = 1.0) -> tuple:
    """(L, cache): the loss as a 0-d array, and the activations the backward needs."""
    xp = backend.array_module(x)
    w1, b1, w21, b21, w22, b22, w3, b3, w4, b4 = (params[f"{layer}.{kind}"] for layer in LAYERS
                                                  for kind in ("weight", "bias"))
    n = x.shape[0]
    u1 = x @ w1.T + b1  # U₁ = X W₁ᵀ + b₁
    h = xp.maximum(u1, 0)  # H = relu(U₁)
    mu = h @ w21.T + b21  # M = H W₂₁ᵀ + b₂₁             (rows: μ(xₙ))
    logvar = h @ w22.T + b22  # Λ = H W₂₂ᵀ + b₂₂         (rows: log σ²(xₙ))
    std = xp.exp(0.5 * logvar)  # S = exp(½Λ) = σ
    z = mu + std * eps  # Z = M + S ⊙ E                  (the reparameterization)
    u3 = z @ w3.T + b3  # U₃ = Z W₃ᵀ + b₃
    h3 = xp.maximum(u3, 0)  # H₃ = relu(U₃)
    logits = h3 @ w4.T + b4  # A = H₃ W₄ᵀ + b₄           (g_φ(z): the logits of p_φ(x|z))
    # Σ ℓ_BCE(A, X) with ℓ_BCE(a, t) = max(a, 0) − a t + log(1 + e^(−|a|)), −log Bernoulli(t; sigmoid(a))
    bce = (xp.maximum(logits, 0) - logits * x + xp.log1p(xp.exp(-abs(logits)))).sum()
    kl = 0.5 * (mu * mu + (xp.expm1(logvar) - logvar)).sum()  # KL = Σ ½(M² + e^Λ − 1 − Λ)
    loss = (bce + beta * kl) / n  # L = (BCE + β KL) / N
    cache = {"u1": u1, "h": h, "mu": mu, "logvar": logvar, "std": std, "z": z, "u3": u3, "h3": h3,
             "logits": logits}
    return loss, cache


def backward(params: dict, x, eps, cache: dict, beta: float = 1.0) -> dict:
    """∂L/∂θ for every parameter θ, in reverse topological order (docs/backprop.md §14.6)."""
    xp = backend.array_module(x)
    w21, w22, w3, w4 = (params[f"{layer}.weight"] for layer in ("fc21", "fc22", "fc3", "fc4"))
    n = x.shape[0]
    grads = {}
    # BCE with logits: ∂ℓ_BCE/∂a = sigmoid(a) − t, and ∂L/∂ℓ = 1/N.
    grad_logits = (sigmoid(cache["logits"]) - x) / n  # Ā = (sigmoid(A) − X) / N
    # A linear layer Y = V Wᵀ + b (docs §9): W̄ = Ȳᵀ V, b̄ = Σₙ Ȳₙ (b is broadcast over rows), V̄ = Ȳ W.
    grads["fc4.weight"] = grad_logits.T @ cache["h3"]  # W̄₄ = Āᵀ H₃
    grads["fc4.bias"] = grad_logits.sum(axis=0)  # b̄₄ = Σₙ Āₙ
    grad_h3 = grad_logits @ w4  # H̄₃ = Ā W₄
    grad_u3 = grad_h3 * (cache["u3"] > 0)  # Ū₃ = H̄₃ ⊙ [U₃ > 0]          (relu′; 0 at the kink)
    grads["fc3.weight"] = grad_u3.T @ cache["z"]  # W̄₃ = Ū₃ᵀ Z
    grads["fc3.bias"] = grad_u3.sum(axis=0)  # b̄₃ = Σₙ Ū₃,ₙ
    grad_z = grad_u3 @ w3  # Z̄ = Ū₃ W₃
    # M and Λ each feed the reparameterization and the KL: their gradients add (docs §2).
    # ∂z/∂μ = 1, ∂z/∂Λ = ½ S ⊙ E;  ∂KL/∂μ = μ, ∂KL/∂Λ = ½(e^Λ − 1) (as expm1: no cancellation near 0).
    kl_scale = beta / n  # ∂L/∂KL = β/N
    grad_mu = grad_z + kl_scale * cache["mu"]  # M̄ = Z̄ + (β/N) M
    grad_logvar = 0.5 * grad_z * cache["std"] * eps + kl_scale * 0.5 * xp.expm1(cache["logvar"])
    #                                          # Λ̄ = ½ Z̄ ⊙ S ⊙ E + (β/N) ½(e^Λ − 1)
    grads["fc21.weight"] = grad_mu.T @ cache["h"]  # W̄₂₁ = M̄ᵀ H
    grads["fc21.bias"] = grad_mu.sum(axis=0)  # b̄₂₁ = Σₙ M̄ₙ
    grads["fc22.weight"] = grad_logvar.T @ cache["h"]  # W̄₂₂ = Λ̄ᵀ H
    grads["fc22.bias"] = grad_logvar.sum(axis=0)  # b̄₂₂ = Σₙ Λ̄ₙ
    grad_h = grad_mu @ w21 + grad_logvar @ w22  # H̄ = M̄ W₂₁ + Λ̄ W₂₂        (H feeds both heads)
    grad_u1 = grad_h * (cache["u1"] > 0)  # Ū₁ = H̄ ⊙ [U₁ > 0]
    grads["fc1.weight"] = grad_u1.T @ x  # W̄₁ = Ū₁ᵀ X
    grads["fc1.bias"] = grad_u1.sum(axis=0)  # b̄₁ = Σₙ Ū₁,ₙ
    return grads


def forward_backward(params: dict, x, eps, beta: float = 1.0) -> tuple:
    """(L, {name: ∂L/∂θ}) for a batch x (N, D) in [0, 1] and noise eps (N, d)."""
    loss, cache = forward(params, x, eps, beta)
    return loss, backward(params, x, eps, cache, beta)


def adam_init(params: dict) -> dict:
    """Adam's state: the step count k = 0 and the moments m = v = 0 of every parameter."""
    xp = backend.array_module(next(iter(params.values())))
    return {"step": 0, "m": {name: xp.zeros_like(theta) for name, theta in params.items()},
            "v": {name: xp.zeros_like(theta) for name, theta in params.items()}}


def adam_step(params: dict, grads: dict, state: dict, lr: float = 1e-3, betas=(0.9, 0.999),
              eps: float = 1e-8) -> None:
    """One Adam update of every parameter, in place: PyTorch's rule (tinyae/optim/adam.py, docs §15.2)."""
    xp = backend.array_module(next(iter(params.values())))
    beta1, beta2 = betas
    state["step"] += 1
    k = state["step"]
    step_size = lr / (1 - beta1**k)  # γ / (1 − β₁ᵏ)          (m's bias correction)
    bias_correction2_sqrt = (1 - beta2**k) ** 0.5  # √(1 − β₂ᵏ)    (v's bias correction)
    for name, theta in params.items():
        g, m, v = grads[name], state["m"][name], state["v"][name]
        m += (1 - beta1) * (g - m)  # m ← m + (1 − β₁)(g − m) = β₁ m + (1 − β₁) g
        v *= beta2
        v += (1 - beta2) * g * g  # v ← β₂ v + (1 − β₂) g ⊙ g
        theta -= step_size * m / (xp.sqrt(v) / bias_correction2_sqrt + eps)  # θ ← θ − γ m̂ / (√v̂ + ε)


def noise(rng: np.random.Generator, shape: tuple, like):
    """ε ~ N(0, I), drawn on the host and sent to the backend of ``like`` (a few KB per batch)."""
    return backend.array_module(like).asarray(rng.standard_normal(shape).astype(like.dtype))


def evaluate(params: dict, batches: Batches, rng: np.random.Generator) -> float:
    """The negative ELBO per image over ``batches``, with one sample of z per image."""
    total, images = 0.0, 0
    for batch in batches:
        x = batch.data
        loss, _ = forward(params, x, noise(rng, (x.shape[0], SIZES[2]), x))
        total, images = total + loss * x.shape[0], images + x.shape[0]  # summed on the device
    return float(total) / images


def main(argv: list[str] | None = None) -> float:
    """Train for ``--epochs`` on MNIST, printing the train and test loss of each epoch; return the last
    test loss."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="use only the first LIMIT training images")
    parser.add_argument("--test-limit", type=int, default=None, help="use only the first LIMIT test images")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=backend.BACKENDS, default=backend.get_backend())
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    train = Batches(*load_mnist("train"), batch_size=args.batch_size, shuffle=True, limit=args.limit,
                    seed=args.seed, dtype="float32", backend_name=args.backend)
    test = Batches(*load_mnist("test"), batch_size=500, limit=args.test_limit, dtype="float32",
                   backend_name=args.backend)
    params = init_params(rng, backend.module(args.backend))
    adam = adam_init(params)
    test_loss = float("nan")
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        total, images = 0.0, 0
        for batch in train:
            x = batch.data
            loss, grads = forward_backward(params, x, noise(rng, (x.shape[0], SIZES[2]), x))
            adam_step(params, grads, adam, lr=args.lr)
            total, images = total + loss * x.shape[0], images + x.shape[0]
        test_loss = evaluate(params, test, rng)
        print(f"epoch {epoch}  train loss {float(total) / images:.3f}  test loss (-ELBO per image) "
              f"{test_loss:.3f}  ({time.perf_counter() - started:.1f} s)")
    return test_loss


if __name__ == "__main__":
    main()
