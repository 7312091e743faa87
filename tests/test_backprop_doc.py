"""docs/backprop.md against the code: its links lead to files that define what they name, and the numbers it
states about edge cases are what tinyae computes (so the page cannot silently go stale)."""

import re
from pathlib import Path

import numpy as np
import pytest

import tinyae as ta
import tinyae.functional as F
from tests.conftest import to_numpy
from tinyae.ops import conv, loss

DOC = Path(__file__).resolve().parent.parent / "docs" / "backprop.md"
LINK = re.compile(r"\[[^\]]*\]\((\.\./[^)#]+)\)(?: \(([^)]*)\))?")


def _links() -> list[tuple[str, list[str]]]:
    """(target relative to docs/, the backticked names in the parentheses right after it) for each link."""
    found = []
    for target, names in LINK.findall(DOC.read_text(encoding="utf-8")):
        found.append((target, re.findall(r"`([\w.]+)`", names)))
    return found


def _defines(source: str, name: str) -> bool:
    """Whether ``source`` defines ``name`` (a class, function or module-level name; ``A.b``: b inside A)."""
    *owner, leaf = name.split(".")
    if owner:
        match = re.search(rf"^class {owner[0]}\b.*?(?=^class |\Z)", source, re.S | re.M)
        source = match.group(0) if match else ""
    definition = rf"^\s*(class|def) {leaf}\b|^\s*{leaf}(: [^=]+)? = |self\.{leaf} = "
    return re.search(definition, source, re.M) is not None


def test_every_link_leads_to_a_file_that_defines_what_it_names():
    links = _links()
    assert len(links) > 40
    for target, names in links:
        path = (DOC.parent / target).resolve()
        assert path.exists(), f"docs/backprop.md links to {target}, which does not exist"
        if path.is_file():
            source = path.read_text(encoding="utf-8")
            missing = [name for name in names if not _defines(source, name)]
            assert not missing, f"{target} does not define {missing}"


def test_the_link_check_notices_a_wrong_name_and_a_wrong_file():
    assert _defines("class Pow(Function):\n    def backward(self):\n", "Pow.backward")
    assert not _defines("class Pow:\n    pass\nclass Neg:\n    def backward(self):\n", "Pow.backward")
    assert not (DOC.parent / "../tinyae/backend.py").exists()  # (the page once linked there)


def _bce_slope(probability: float, target: float) -> float:
    p = ta.tensor(np.array([probability]), requires_grad=True)
    F.binary_cross_entropy(p, ta.tensor(np.array([target])), reduction="sum").backward()
    return float(to_numpy(p.grad)[0])


def test_bce_departs_from_the_derivative_wherever_p_times_1_minus_p_is_below_epsilon():
    """§13.3: (p − t)/max(p(1 − p), ε), ε = float32(1e-12): −1.0e12 at p = 1e-20, t = 1 (the derivative of the
    clamped loss is −1e20 there), the exact derivative where p(1 − p) ≥ ε."""
    assert loss.BCE_EPSILON == pytest.approx(9.99999996e-13, rel=1e-9)
    assert _bce_slope(1e-20, 1.0) == pytest.approx(-1.0e12, rel=1e-6)
    assert _bce_slope(5e-13, 1.0) == pytest.approx(-1.0e12, rel=1e-6)  # −2e12 would be the derivative
    assert _bce_slope(2e-12, 1.0) == pytest.approx(-1 / 2e-12, rel=1e-6)  # above ε: the derivative itself
    assert _bce_slope(1e-6, 1.0) == pytest.approx(-1e6, rel=1e-6)


def test_pow_gradient_in_the_exponent_at_a_zero_base():
    """§4 and §16: ∂(aᵇ)/∂b at a = 0 is 0 for b ≥ 0 and NaN for b < 0 (aᵇ = ∞ times ln a replaced by 0)."""
    a = ta.tensor(np.zeros(4), requires_grad=True)
    b = ta.tensor(np.array([-1.0, 0.0, 0.5, 2.0]), requires_grad=True)
    with np.errstate(divide="ignore"):  # 0 to a negative power is ∞, and NumPy says so
        y = a**b
    y.sum().backward()
    grad_b, grad_a = to_numpy(b.grad), to_numpy(a.grad)
    assert np.isnan(grad_b[0]) and (grad_b[1:] == 0).all()
    assert grad_a[0] == -np.inf and grad_a[1] == 0 and grad_a[2] == np.inf and grad_a[3] == 0


def test_bce_on_a_saturated_sigmoid_against_bce_with_logits():
    """§13.4's table, float32, a = 20, t = 0."""
    a = ta.tensor(np.array([20.0], dtype=np.float32), requires_grad=True)
    t = ta.tensor(np.array([0.0], dtype=np.float32))
    composed = F.binary_cross_entropy(a.sigmoid(), t, reduction="sum")
    composed.backward()
    assert composed.item() == pytest.approx(100.0) and to_numpy(a.grad)[0] == 0.0
    a.grad = None
    fused = F.binary_cross_entropy_with_logits(a, t, reduction="sum")
    fused.backward()
    assert fused.item() == pytest.approx(20.0) and to_numpy(a.grad)[0] == pytest.approx(1.0)


def test_the_saved_quantities_are_halved_as_the_page_says():
    """§13.5 and §14.2: GaussianKL saves ½·expm1(logvar), Reparameterize ½·σ⊙ε."""
    mu, logvar = (ta.tensor(np.array([0.3, -0.2]), requires_grad=True) for _ in range(2))
    eps = np.array([0.7, -1.1])
    kl = F.gaussian_kl(mu, logvar)
    assert np.allclose(to_numpy(kl._fn.half_expm1), 0.5 * np.expm1([0.3, -0.2]))
    z = F.reparameterize(mu, logvar, eps=ta.tensor(eps))
    assert np.allclose(to_numpy(z._fn.half_noise), 0.5 * np.exp(0.5 * np.array([0.3, -0.2])) * eps)


def test_the_worked_shape_example_of_batched_matmul():
    """§8: A (5, 1, 3, 4) @ B (6, 4, 2) → C (5, 6, 3, 2); the gradients have the shapes of A and B."""
    rng = np.random.default_rng(0)
    a = ta.tensor(rng.standard_normal((5, 1, 3, 4)), requires_grad=True)
    b = ta.tensor(rng.standard_normal((6, 4, 2)), requires_grad=True)
    c = a @ b
    assert c.shape == (5, 6, 3, 2)
    grad_c = rng.standard_normal(c.shape)
    c.backward(ta.tensor(grad_c))
    b_t = np.swapaxes(to_numpy(b.data), -1, -2)
    expected_a = (grad_c @ b_t).sum(axis=1, keepdims=True)  # (5, 6, 3, 4) summed over the broadcast axis
    expected_b = (np.swapaxes(to_numpy(a.data), -1, -2) @ grad_c).sum(axis=0)  # (5, 6, 4, 2) summed
    assert np.allclose(to_numpy(a.grad), expected_a) and np.allclose(to_numpy(b.grad), expected_b)


def test_the_worked_shape_example_of_a_convolution_with_a_stride_and_padding_per_axis():
    """§11.1: x (2, 3, 7, 9), w (4, 3, 3, 2), stride (2, 1), padding (1, 0): OH = 4, OW = 8; cols (18, 64),
    W (4, 18), Y (4, 64); the gradients come back in the shapes of x and w."""
    rng = np.random.default_rng(0)
    x = ta.tensor(rng.standard_normal((2, 3, 7, 9)), requires_grad=True)
    w = ta.tensor(rng.standard_normal((4, 3, 3, 2)), requires_grad=True)
    y = F.conv2d(x, w, stride=(2, 1), padding=(1, 0))
    assert y.shape == (2, 4, 4, 8)
    cols = conv.im2col_twin(to_numpy(x.data).transpose(1, 2, 3, 0), (3, 2), (2, 1), (4, 8), (1, 0))
    assert cols.shape == (3 * 3 * 2, 4 * 8 * 2)
    y.sum().backward()
    assert x.grad.shape == (2, 3, 7, 9) and w.grad.shape == (4, 3, 3, 2)
