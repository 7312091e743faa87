"""tinyae.viz: the graph behind a tensor as DOT text and as a PNG, on the backend under test."""

import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import tinyae as ta
from tinyae import viz
from tinyae.models import VAE, ConvVAE
from tests.conftest import BACKEND, to_numpy

ROOT = Path(__file__).resolve().parent.parent

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
    assert dot.count(", shape=") == 9  # tensors a, b, c, a·b, a·b + c, y; ops Mul, Add, Sum
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
    assert dot.count(", shape=") == 1 and " -> " not in dot


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
    dot = viz.to_dot(y, grads=True)
    assert "grad norm 10" in dot  # ∂y/∂a = 2a = (6, 8)
    assert "grad norm" not in viz.to_dot(y)
    assert viz.to_dot(y, show_grad_norms=True) == dot  # the former name of grads=True


class HalfBlind(ta.Function):
    """y = a + b whose backward sends nothing to b (a wrong op: b receives no gradient)."""

    def forward(self, a, b):
        return a + b

    def backward(self, grad_out):
        return grad_out, None


def test_a_tensor_that_receives_no_gradient_says_so():
    a, b = (ta.tensor([1.0, 2.0], requires_grad=True) for _ in range(2))
    dot = viz.to_dot(HalfBlind.apply(a, b).sum(), grads=True)
    assert dot.count("grad None") == 1 and dot.count("grad norm") == 3  # b; a, a + b, the sum


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
    path = viz.draw_graph(loss, tmp_path / "back.png", grads=True, backward=True, module=model, dpi=80)
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


# Gradients you can watch ---------------------------------------------------------------------------------

def graph_tensors(root):
    """Every Tensor of the graph behind ``root``."""
    found, stack = {id(root): root}, [root]
    while stack:
        function = stack.pop()._fn
        for value in function.inputs if function is not None else ():
            if isinstance(value, ta.Tensor) and id(value) not in found:
                found[id(value)] = value
                stack.append(value)
    return list(found.values())


def norm_line(grad) -> str:
    return f"grad norm {np.linalg.norm(to_numpy(grad).astype(np.float64)):.3g}"


def test_every_tensor_shows_the_norm_of_the_gradient_the_engine_computes():
    loss, model = small_vae_loss()
    tensors = [t for t in graph_tensors(loss) if t.requires_grad]
    flow, _ = viz.gradient_flow(loss)
    nodes = viz.build_graph(loss, module=model, grads=True)  # before any backward: the graph is whole
    assert all(p.grad is None for p in model.parameters())  # drawing writes no .grad
    for tensor in tensors:
        if tensor._fn is not None:
            tensor.retain_grad()
    loss.backward()
    intermediates = [t for t in tensors if t._fn is not None]
    assert len(intermediates) == 13  # every Linear, ReLU, Reparameterize, loss term: not only the leaves
    for tensor in tensors:
        np.testing.assert_allclose(to_numpy(flow[id(tensor)]), to_numpy(tensor.grad), rtol=1e-6, atol=1e-9)
    lines = [line for node in nodes for line in node.lines if line.startswith("grad")]
    assert sorted(lines) == sorted(norm_line(t.grad) for t in tensors)


def test_gradient_norms_by_hand():
    y, a, b, _ = small_expression()  # y = Σ(a ⊙ b + c)
    a_host, b_host = to_numpy(a.data), to_numpy(b.data)
    lines = [node.lines for node in viz.build_graph(y, grads=True) if node.kind != "op"]
    assert lines == [
        ["() float64", "grad norm 1"],  # ∂y/∂y
        ["(2, 3) float64", f"grad norm {6 ** 0.5:.3g}"],  # ∂y/∂(a ⊙ b + c) = 1
        ["(2, 3) float64"],  # c needs no gradient
        ["(2, 3) float64", f"grad norm {6 ** 0.5:.3g}"],  # ∂y/∂(a ⊙ b) = 1
        ["(3,) float64", f"grad norm {np.linalg.norm(a_host.sum(axis=0)):.3g}"],  # ∂y/∂b = Σ_rows a
        ["(2, 3) float64", f"grad norm {2 ** 0.5 * np.linalg.norm(b_host):.3g}"],  # ∂y/∂a = b on each row
    ]


def test_a_tensor_used_twice_receives_two_contributions_and_shows_their_sum():
    a = ta.tensor([3.0, 4.0], requires_grad=True)
    y = (a * 2).sum() + (a * a).sum()  # ∂y/∂a = 2 + 2a = (8, 10), from 2, a and a
    nodes = viz.build_graph(y, backward=True, grads=True)
    leaf = next(number for number, node in enumerate(nodes) if node.kind == "leaf")
    assert nodes[leaf].lines[-1] == f"grad norm {np.hypot(8, 10):.3g}"
    sent = sorted(grad for node in nodes for pred, grad in zip(node.preds, node.pred_grads) if pred == leaf)
    assert sent == sorted([f"{2 * 2 ** 0.5:.3g}", "5", "5"])
    ops = [node for node in nodes if node.kind == "op"]
    assert all(grad is not None for node in ops for grad, pred in zip(node.pred_grads, node.preds))
    outputs = [node for node in nodes if node.kind != "op" and node.preds]
    assert all(node.pred_grads == [node.lines[-1].removeprefix("grad norm ")] for node in outputs)


def test_backward_edges_in_dot():
    a = ta.tensor([3.0, 4.0], requires_grad=True)
    c = ta.tensor([1.0, 1.0])
    dot = viz.to_dot((a * c).sum(), backward=True)
    reverse = [line for line in dot.splitlines() if "style=dashed" in line]
    assert len(reverse) == 4  # y → Sum, Sum → a·c, a·c → Mul, Mul → a (not → c, a constant)
    assert 'label="1.41"' in dot  # ∂y/∂a = c
    assert "grad norm" not in dot  # backward=True alone labels the edges, not the nodes
    assert "dashed" not in viz.to_dot((a * c).sum())


def test_gradient_norms_need_an_intact_graph_of_a_loss():
    a = ta.tensor([3.0, 4.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"draw_graph: gradients are drawn for a single-element tensor "
                                         r"\(a loss\), got shape \(2,\)"):
        viz.draw_graph(a * a, "unused.png", grads=True)
    y = (a * a).sum()
    y.backward(retain_graph=True)
    assert "grad norm 10" in viz.to_dot(y, grads=True)  # after a backward that kept the graph
    assert a.grad is not None and to_numpy(a.grad).tolist() == [6.0, 8.0]  # not accumulated again
    ta.optim.SGD([a], lr=0.1).step()  # writes a, which Mul saved
    with pytest.raises(RuntimeError, match="modified in place"):
        viz.to_dot(y, grads=True)


# A clearer graph ------------------------------------------------------------------------------------------

def op_node(nodes, name):
    return next(node for node in nodes if node.kind == "op" and node.lines[0] == name)


def test_inputs_of_multi_input_ops_are_labelled_and_model_names_are_used():
    loss, model = small_vae_loss()
    nodes = viz.build_graph(loss, module=model)
    reparameterize = op_node(nodes, "Reparameterize")
    inputs = {label: nodes[pred].lines[0]
              for pred, label in zip(reparameterize.preds, reparameterize.pred_labels)}
    assert inputs == {"μ": "mu", "log σ²": "logvar", "ε": "ε"}  # ε: an array, named after its input
    linears = [node for node in nodes if node.lines == ["Linear"]]
    assert len(linears) == 5 and all(node.pred_labels == ["x", "weight", "bias"] for node in linears)
    relu = op_node(nodes, "ReLU")
    assert relu.pred_labels == [""]  # one input: nothing to tell apart
    named = {node.lines[0] for node in nodes if node.kind != "op"}
    assert {"x", "hidden", "mu", "logvar", "z", "logits", "recon", "kl", "loss"} <= named
    dot = viz.to_dot(loss, module=model)
    assert 'label="μ"' in dot and 'label="log σ²"' in dot and 'label="ε"' in dot and 'label="z\\n' in dot
    assert 'label="total\\n' in viz.to_dot(loss, module=model, names={id(loss): "total"})  # names= wins


def test_model_names_hold_no_tensor_alive():
    loss, model = small_vae_loss()
    assert set(model.named_tensors()) == {"x", "hidden", "mu", "logvar", "z", "logits", "recon", "kl", "loss"}
    del loss
    assert "loss" not in model.named_tensors() and "z" not in model.named_tensors()


@pytest.mark.parametrize("decoder", ["transpose", "upsample"])
def test_convolutions_show_stride_and_padding(decoder):
    ta.manual_seed(0)
    model = ConvVAE(latent_dim=2, decoder=decoder)
    loss, _ = model.loss(ta.tensor(np.random.default_rng(0).random((2, 1, 28, 28)).astype(np.float32)))
    lines = [node.lines for node in viz.build_graph(loss, module=model) if node.kind == "op"]
    assert lines.count(["Conv2d", "stride 2, padding 1"]) == 2  # the encoder's
    if decoder == "transpose":
        assert lines.count(["ConvTranspose2d", "stride 2, padding 1"]) == 2
    else:
        assert lines.count(["Conv2d", "stride 1, padding 1"]) == 2
        assert lines.count(["UpsampleNearest", "scale 2"]) == 2
    assert "features" in {node.lines[0] for node in viz.build_graph(loss, module=model)}


def test_uneven_stride_and_padding_are_shown_as_pairs():
    x = ta.tensor(np.zeros((1, 1, 6, 6)), requires_grad=True)
    w = ta.tensor(np.zeros((1, 1, 3, 3)), requires_grad=True)
    nodes = viz.build_graph(ta.functional.conv2d(x, w, stride=(2, 1), padding=(0, 1)).sum())
    assert op_node(nodes, "Conv2d").lines == ["Conv2d", "stride (2, 1), padding (0, 1)"]


@pytest.mark.skipif(BACKEND == "strict", reason="the figures are drawn on numpy; run once")
def test_the_readme_figures_are_drawn_from_the_current_loss(tmp_path):
    """tools/draw_readme_graph.py draws the committed figures: the same layout (a node more or less, like
    the Mul(1, ·) the loss once recorded, changes the drawing's size), and the loss as it is now."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import draw_readme_graph
    finally:
        sys.path.remove(str(ROOT / "tools"))
    loss, model = draw_readme_graph.vae_loss(batch=8)
    ops = [node.lines[0] for node in viz.build_graph(loss, module=model) if node.kind == "op"]
    assert sorted(ops) == sorted(["Add", "Div(·, 8)", "Div(·, 8)", "BinaryCrossEntropyWithLogits", "GaussianKL",
                                  "Reparameterize", *["Linear"] * 5, "ReLU", "ReLU"])
    for path in draw_readme_graph.main(["--out", str(tmp_path)]):
        committed = matplotlib.image.imread(ROOT / "docs" / path.name)
        assert matplotlib.image.imread(path).shape == committed.shape, path.name
