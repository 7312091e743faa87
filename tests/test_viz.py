"""tinyae.viz: the graph behind a tensor as DOT text and as a PNG, on the backend under test."""

import matplotlib.image
import numpy as np
import pytest

import tinyae as ta
from tinyae import viz
from tinyae.models import VAE

PARAMETER_NAMES = [f"{layer}.{kind}" for layer in ("fc1", "fc21", "fc22", "fc3", "fc4")
                   for kind in ("weight", "bias")]


def small_expression():
    """y = Σ(a ⊙ b + c): leaves a (2, 3) and b (3,) require grad, c (2, 3) does not."""
    rng = np.random.default_rng(0)
    a = ta.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = ta.tensor(rng.standard_normal(3), requires_grad=True)
    c = ta.tensor(rng.standard_normal((2, 3)))
    return (a * b + c).sum(), a, b, c


def small_vae_loss():
    ta.manual_seed(0)
    model = VAE(input_dim=12, hidden=8, latent_dim=3)
    x = ta.tensor(np.random.default_rng(1).random((4, 12)).astype(np.float32))
    loss, _ = model.loss(x)
    return loss, model


def assert_png(path, min_side: int = 100) -> None:
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] >= min_side and pixels.shape[1] >= min_side
    assert pixels[..., :3].std() > 0.05  # not a blank canvas


def test_to_dot_has_every_op_shape_and_edge():
    y, *_ = small_expression()
    dot = viz.to_dot(y)
    for op in ("Mul", "Add", "Sum"):
        assert f'label="{op}"' in dot
    for shape in ("(2, 3) float64", "(3,) float64", "() float64"):
        assert shape in dot
    assert dot.count("[label=") == 9  # tensors a, b, c, a·b, a·b + c, y; ops Mul, Add, Sum
    assert dot.count(" -> ") == 8  # a, b → Mul → a·b;  a·b, c → Add → a·b + c;  a·b + c → Sum → y
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")


def test_to_dot_colors_leaves_intermediates_and_constants():
    y, *_ = small_expression()
    dot = viz.to_dot(y)
    assert dot.count(viz.COLORS["leaf"]) == 2  # a, b
    assert dot.count(viz.COLORS["constant"]) == 1  # c
    assert dot.count(viz.COLORS["intermediate"]) == 3  # a·b, a·b + c, y
    assert dot.count(viz.COLORS["op"]) == 3


def test_python_numbers_appear_in_the_op_label():
    a = ta.tensor([1.0, 2.0], requires_grad=True)
    dot = viz.to_dot((a * 2.5 / 4).sum())
    assert "Mul(·, 2.5)" in dot and "Div(·, 4)" in dot
    assert dot.count(" -> ") == 6  # scalars are labels, not nodes


def test_a_tensor_used_twice_gives_two_edges():
    a = ta.tensor([1.0, 2.0], requires_grad=True)
    assert viz.to_dot(a * a).count(" -> ") == 3


def test_a_leaf_is_one_node():
    dot = viz.to_dot(ta.tensor([1.0, 2.0], requires_grad=True))
    assert dot.count("[label=") == 1 and " -> " not in dot


def test_module_and_names_label_tensors():
    loss, model = small_vae_loss()
    dot = viz.to_dot(loss, module=model, names={id(loss): "loss"})
    for name in PARAMETER_NAMES:
        assert f'label="{name}\\n' in dot
    assert 'label="loss\\n() float32"' in dot
    assert "Reparameterize" in dot and "GaussianKL" in dot and "BinaryCrossEntropyWithLogits" in dot


def test_gradient_norms_after_backward_with_retained_graph():
    a = ta.tensor([3.0, 4.0], requires_grad=True)
    y = (a * a).sum()
    y.backward(retain_graph=True)
    dot = viz.to_dot(y, show_grad_norms=True)
    assert "grad norm 10" in dot  # ∂y/∂a = 2a = (6, 8)
    assert "grad norm" not in viz.to_dot(y)


def test_leaves_without_a_gradient_say_so():
    y, *_ = small_expression()
    assert viz.to_dot(y, show_grad_norms=True).count("grad None") == 2


def test_a_released_graph_gives_a_clear_error(tmp_path):
    y, *_ = small_expression()
    y.backward()
    message = (r"freed by backward\(\). Draw it before calling backward\(\), "
               r"or call backward\(retain_graph=True\)")
    with pytest.raises(RuntimeError, match="to_dot: the graph .* was " + message):
        viz.to_dot(y)
    with pytest.raises(RuntimeError, match="draw_graph: the graph .* was " + message):
        viz.draw_graph(y, tmp_path / "graph.png")
    assert not (tmp_path / "graph.png").exists()


def test_draw_graph_of_a_small_expression(tmp_path):
    y, *_ = small_expression()
    path = viz.draw_graph(y, tmp_path / "small.png")
    assert path == tmp_path / "small.png" and path.stat().st_size > 5_000
    assert_png(path)


def test_draw_graph_of_a_vae_loss_with_names_and_gradient_norms(tmp_path):
    loss, model = small_vae_loss()
    loss.backward(retain_graph=True)
    path = viz.draw_graph(loss, tmp_path / "vae.png", show_grad_norms=True, module=model, dpi=80)
    assert path.stat().st_size > 20_000
    assert_png(path, min_side=600)


def test_long_chains_are_walked_without_recursion():
    x = ta.tensor([0.5], requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    assert viz.to_dot(y).count(" -> ") == 2 * 3000  # x → Mul → t, per op


def test_layout_puts_every_edge_between_consecutive_rows_and_orders_no_worse():
    loss, model = small_vae_loss()
    nodes = viz.build_graph(loss, module=model)
    real = len(nodes)
    rows = viz._layers(nodes)
    row_of = {number: r for r, row in enumerate(rows) for number in row}
    assert sorted(row_of) == list(range(len(nodes))) and rows[-1] == [0]  # the root alone at the bottom
    assert all(row_of[s] == row_of[n] + 1 for n, node in enumerate(nodes) for s in node.succs)
    assert len(nodes) > real and all(node.kind == "dummy" for node in nodes[real:])  # x → BCE is long
    ordered = viz._order([list(row) for row in rows], nodes)
    assert sorted(map(sorted, ordered)) == sorted(map(sorted, rows))
    assert viz._crossings(ordered, nodes) <= viz._crossings(rows, nodes)
