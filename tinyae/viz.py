"""The computation graph that produced a tensor: a PNG drawn with matplotlib alone, or Graphviz DOT text.

    loss, _ = model.loss(x)
    viz.draw_graph(loss, "graph.png", module=model)                  # the forward pass
    viz.draw_graph(loss, "grads.png", module=model, grads=True)      # and ‖∂L/∂t‖₂ on every tensor
    viz.draw_graph(loss, "back.png", module=model, backward=True)    # and the gradients flowing back

The graph is bipartite and drawn in the direction the data flows, each input → op → its output, the root
(the tensor passed in) at the bottom. Tensor nodes show their shape and dtype and a name: a parameter's
(``module=``'s ``named_parameters``), an intermediate's where the model names it (``module.named_tensors()``:
tinyae's models name ``x``, ``mu``, ``logvar``, ``z``, ``logits``, ``recon``, ``kl``, ``loss``), or one given
as ``names={id(tensor): name}``. Op nodes show the Function's class name, Python numbers among its
operands in place (``Div(·, 64)`` is t / 64), and the geometry of a convolution (stride, padding) or an
upsampling (scale) on a second line. The edges into an op with several array inputs carry the names of
``forward``'s parameters (μ, log σ², ε into Reparameterize; x, weight, bias into Linear).
Arrays passed to an op as constants (reparameterize's ε) are no-grad nodes, named after the input they
feed. Colors: green, a leaf that requires grad (a parameter); blue, an intermediate result; gray, no grad
(data, constants); yellow, an op; the root is outlined in red.

Gradients (``grads=True`` or ``backward=True``). ``gradient_flow`` runs the backward pass of the root (a
single-element tensor, a loss: ∂L/∂L = 1) once more through the graph, calling each op's ``backward`` in the
engine's order (decreasing sequence number) and summing what consumers send back, as
``tinyae.autograd.backward`` does, but keeping every tensor's gradient (intermediates included) and every
op's contribution to each input, and writing no ``.grad``. So the graph must be intact: draw before
``backward()`` or after ``backward(retain_graph=True)``; a graph written since (an optimizer step) raises
the engine's RuntimeError. The engine itself pays nothing for this. ``grads=True`` adds ‖∂L/∂t‖₂ to every
tensor that requires grad; ``backward=True`` also draws the reverse edges, dashed red: ∂L/∂output flowing
into each op's backward, and what that backward sends to each input, each labelled with its norm (its
shape is the tensor's). A tensor consumed twice receives two contributions; its node shows their sum.

Layout (a small Sugiyama scheme): each node's layer is its longest path to the root, so every edge points
down; edges spanning several layers pass through one dummy slot per layer; a few barycenter sweeps order
each layer (keeping the ordering with the fewest crossings), and x positions are relaxed towards the mean
of each node's neighbours while keeping boxes apart. The graph is walked iteratively, never recursively.
"""

from __future__ import annotations

import heapq
import inspect
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import autograd, backend
from .tensor import Tensor

ROOT_COLOR, EDGE_COLOR, BACKWARD_COLOR, INPUT_COLOR = "#d62728", "#666666", "#c0392b", "#1f4e9a"
COLORS = {"leaf": "#c6e5b3", "intermediate": "#cfe0f3", "constant": "#e4e4e4", "op": "#fff0c2"}
LEGEND = {"leaf": "leaf, requires grad", "intermediate": "intermediate", "constant": "no grad / constant",
          "op": "op (Function)"}
FONT_SIZE, CHAR_WIDTH, LINE_HEIGHT, PAD = 6.5, 0.61, 1.22, 3.0  # points; DejaVu Sans Mono's advance width
NODE_GAP, DUMMY_GAP, ROW_GAP, BACKWARD_ROW_GAP, MARGIN = 12.0, 5.0, 24.0, 40.0, 12.0  # points
BACKWARD_SHIFT = 5.0  # points: a reverse edge runs this far to the right of its forward edge
MAX_PIXELS = 30000  # per side; the dpi is lowered for larger drawings
OP_OPTIONS = {"stride": "stride", "padding": "padding", "scale": "scale"}  # attribute → label, when saved
SYMBOLS = {"mu": "μ", "logvar": "log σ²", "eps": "ε"}  # forward's parameter names, as the math writes them


@dataclass
class Node:
    """A box of the drawing; ``preds``/``succs`` index the nodes its edges come from and go to.

    Parallel to ``preds``: ``pred_labels``, the name of each incoming edge (an op's input: "μ", "weight";
    "" for none), and ``pred_grads``, the label of the gradient flowing back along it (None: none flows,
    or gradients were not asked for)."""

    kind: str  # "op", "leaf", "intermediate", "constant" or "dummy" (a long edge crossing a layer)
    lines: list[str]
    width: float = 2.0
    height: float = 0.0
    preds: list[int] = field(default_factory=list)
    succs: list[int] = field(default_factory=list)
    pred_labels: list[str] = field(default_factory=list)
    pred_grads: list[str | None] = field(default_factory=list)


def _released_error(caller: str) -> RuntimeError:
    return RuntimeError(
        f"{caller}: the graph that produced this tensor was freed by backward(). Draw it before calling "
        "backward(), or call backward(retain_graph=True) to keep it (needed to show gradient norms)."
    )


def _names(names: dict[int, str] | None, module) -> dict[int, str]:
    """{id(tensor): name}: the module's named intermediates, then its parameters, then ``names``."""
    labels = {}
    if module is not None:
        named_tensors = getattr(module, "named_tensors", None)
        if named_tensors is not None:
            labels.update((id(tensor), name) for name, tensor in named_tensors().items())
        labels.update((id(parameter), name) for name, parameter in module.named_parameters())
    labels.update(names or {})
    return labels


def gradient_norm(grad) -> float:
    """‖grad‖₂, summed in float64 (a float32 gradient's squares may overflow float32)."""
    xp = backend.array_module(grad)
    wide = xp.asarray(grad).astype(np.float64)
    return float(xp.sqrt((wide * wide).sum()))


def gradient_flow(root: Tensor, caller: str = "gradient_flow") -> tuple[dict[int, object], dict]:
    """The backward pass of ``root`` through its (intact) graph, keeping everything it computes:
    ({id(t): ∂L/∂t} for every tensor t that requires grad and receives a gradient, root included;
    {(id(op), position): what op.backward sent to its input at that position}). L = root, which must hold a
    single element (∂L/∂L = 1). No ``.grad`` is written. See the module docstring."""
    if root.data.size != 1:
        raise ValueError(f"{caller}: gradients are drawn for a single-element tensor (a loss), got shape "
                         f"{root.shape}")
    if not root.requires_grad:
        return {}, {}
    xp = backend.array_module(root.data)
    totals = {id(root): xp.ones(root.data.shape, dtype=root.dtype)}
    sent: dict[tuple, object] = {}
    pending = [] if root._fn is None else [(-root._fn.sequence, root)]
    while pending:
        tensor = heapq.heappop(pending)[1]
        function = tensor._fn
        if function.inputs is None:
            raise _released_error(caller)
        if function.writes != autograd._writes:
            autograd._check_saved_versions(function, tensor)
        input_grads = function.backward(totals[id(tensor)])
        if type(input_grads) is not tuple:
            input_grads = (input_grads,)
        for position, (value, grad) in enumerate(zip(function.inputs, input_grads)):
            if grad is None or not isinstance(value, Tensor) or not value.requires_grad:
                continue
            sent[id(function), position] = grad
            if id(value) in totals:
                totals[id(value)] = totals[id(value)] + grad  # out of place: ops may hand out views
            else:
                totals[id(value)] = grad
                if value._fn is not None:  # sequence numbers are unique: tensors are never compared
                    heapq.heappush(pending, (-value._fn.sequence, value))
    return totals, sent


def _format_norm(grad) -> str:
    return f"{gradient_norm(grad):.3g}"


def _tensor_lines(value, name: str | None, totals: dict[int, object] | None) -> list[str]:
    shape = "(" + ", ".join(str(n) for n in value.shape) + ("," if len(value.shape) == 1 else "") + ")"
    lines = ([name] if name else []) + [f"{shape} {value.dtype}"]
    if totals is not None and getattr(value, "requires_grad", False):
        grad = totals.get(id(value))
        lines.append("grad None" if grad is None else f"grad norm {_format_norm(grad)}")
    return lines


def _compact(value) -> str:
    """An op option as written: a pair of equal numbers as one (stride (2, 2) → 2)."""
    if isinstance(value, tuple) and len(set(value)) == 1:
        value = value[0]
    return f"{value:g}" if isinstance(value, (int, float, np.generic)) else str(value)


def op_lines(function) -> list[str]:
    """The text of an op's box: its name, with Python numbers among its operands in place, and on a second
    line the options its forward saved that shape the result (a convolution's stride and padding)."""
    scalars = (int, float, np.generic)
    name = function.name
    if any(isinstance(value, scalars) for value in function.inputs):
        operands = [f"{value:g}" if isinstance(value, scalars) else "·"
                    for value in function.inputs if value is not None]
        name = f"{name}({', '.join(operands)})"
    options = [f"{label} {_compact(getattr(function, attribute))}" for attribute, label in OP_OPTIONS.items()
               if getattr(function, attribute, None) is not None]
    return [name, ", ".join(options)] if options else [name]


def input_names(function) -> list[str]:
    """The name of each positional input of an op with several array inputs, from its ``forward``'s
    parameters (written as symbols where the math has one: μ, log σ², ε); "" for every input of an op
    with one array input. A ``*arrays`` parameter numbers its inputs."""
    arrays = [isinstance(value, Tensor) or backend.is_array(value) for value in function.inputs]
    if sum(arrays) < 2:
        return [""] * len(arrays)
    names = []
    for parameter in list(inspect.signature(function.forward).parameters.values()):
        if parameter.kind is parameter.VAR_POSITIONAL:
            names += [f"{parameter.name}[{i}]" for i in range(len(arrays) - len(names))]
            break
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            names.append(SYMBOLS.get(parameter.name, parameter.name))
    names += [""] * (len(arrays) - len(names))
    return [name if is_array else "" for name, is_array in zip(names, arrays)]


def build_graph(root: Tensor, *, names: dict[int, str] | None = None, module=None, grads: bool = False,
                backward: bool = False, caller: str = "build_graph") -> list[Node]:
    """The nodes of the graph behind ``root`` (node 0), linked by data-flow edges (``preds``/``succs``).

    ``grads``: tensors show ‖∂L/∂t‖₂; ``backward``: each edge also carries the norm of the gradient that
    flows back along it (``pred_grads``). Both run ``gradient_flow``."""
    labels = _names(names, module)
    totals, sent = gradient_flow(root, caller) if grads or backward else (None, None)
    index: dict[int, int] = {}
    nodes: list[Node] = []

    def add(kind: str, lines: list[str], key: int | None = None) -> int:
        if key is not None:
            index[key] = len(nodes)
        nodes.append(Node(kind, lines))
        return len(nodes) - 1

    def tensor_kind(value: Tensor) -> str:
        return "constant" if not value.requires_grad else "leaf" if value._fn is None else "intermediate"

    def back_label(grad) -> str | None:
        return None if not backward or grad is None else _format_norm(grad)

    add(tensor_kind(root), _tensor_lines(root, labels.get(id(root)), totals if grads else None), id(root))
    stack = [root]
    while stack:
        tensor = stack.pop()
        function = tensor._fn
        if function is None:
            continue
        if function.inputs is None:
            raise _released_error(caller)
        op = add("op", op_lines(function))
        output = nodes[index[id(tensor)]]
        nodes[op].succs.append(index[id(tensor)])
        output.preds.append(op)
        output.pred_labels.append("")
        output.pred_grads.append(back_label(totals.get(id(tensor)) if totals is not None else None))
        edge_names = input_names(function)
        for position in reversed(range(len(function.inputs))):  # reversed: the first input is explored first
            value = function.inputs[position]
            if not (isinstance(value, Tensor) or backend.is_array(value)):
                continue  # Python numbers are in the op's label; None is an absent optional input
            if id(value) not in index:  # an array given to the op (reparameterize's ε): named after the input
                kind = tensor_kind(value) if isinstance(value, Tensor) else "constant"
                name = labels.get(id(value)) or (None if isinstance(value, Tensor) else edge_names[position])
                add(kind, _tensor_lines(value, name, totals if grads else None), id(value))
                if isinstance(value, Tensor):
                    stack.append(value)
            nodes[index[id(value)]].succs.append(op)
            nodes[op].preds.insert(0, index[id(value)])
            nodes[op].pred_labels.insert(0, edge_names[position])
            nodes[op].pred_grads.insert(0, back_label(sent.get((id(function), position)) if sent else None))
    return nodes


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(tensor: Tensor, *, grads: bool = False, backward: bool = False,
           names: dict[int, str] | None = None, module=None, show_grad_norms: bool = False) -> str:
    """Graphviz DOT text of the graph behind ``tensor`` (render with ``dot -Tpng graph.dot -o graph.png``).

    Same nodes, labels, colors and options as ``draw_graph``; one edge per (input, op) pair, labelled with
    the input's name where the op has several, and one per op output; ``backward=True`` adds the reverse
    edges (dashed red, labelled with the gradient's norm). Raises RuntimeError if backward() has already
    freed the graph.
    """
    nodes = build_graph(tensor, names=names, module=module, grads=grads or show_grad_norms,
                        backward=backward, caller="to_dot")
    lines = ["digraph tinyae {", '  node [fontname="monospace", fontsize=10, style=filled];']
    for number, node in enumerate(nodes):
        label = "\\n".join(_dot_text(line) for line in node.lines)
        shape = "ellipse" if node.kind == "op" else "box"
        extra = f', color="{ROOT_COLOR}", penwidth=2' if number == 0 else ""
        lines.append(f'  n{number} [label="{label}", shape={shape}, fillcolor="{COLORS[node.kind]}"{extra}];')
    for number, node in enumerate(nodes):
        for pred, name in zip(node.preds, node.pred_labels):
            lines.append(f'  n{pred} -> n{number} [label="{_dot_text(name)}"];' if name
                         else f"  n{pred} -> n{number};")
    for number, node in enumerate(nodes):
        for pred, grad in zip(node.preds, node.pred_grads):
            if grad is not None:
                lines.append(f'  n{number} -> n{pred} [label="{grad}", style=dashed, '
                             f'color="{BACKWARD_COLOR}", fontcolor="{BACKWARD_COLOR}", constraint=false];')
    return "\n".join(lines + ["}"]) + "\n"


def _layers(nodes: list[Node]) -> list[list[int]]:
    """Rows top to bottom, by longest path to the root (Kahn's algorithm from the root, consumers first);
    an edge spanning k rows is split by k − 1 dummy nodes."""
    depth = [0] * len(nodes)
    waiting = [len(node.succs) for node in nodes]
    ready = [0]
    while ready:
        number = ready.pop()
        for pred in nodes[number].preds:
            depth[pred] = max(depth[pred], depth[number] + 1)
            waiting[pred] -= 1
            if waiting[pred] == 0:
                ready.append(pred)
    bottom = max(depth)
    rows: list[list[int]] = [[] for _ in range(bottom + 1)]
    for number in range(len(nodes)):
        rows[bottom - depth[number]].append(number)
    row_of = [bottom - d for d in depth]
    real = len(nodes)
    for number in range(real):
        for position, succ in enumerate(list(nodes[number].succs)):
            if row_of[succ] - row_of[number] < 2:
                continue
            chain = [number]
            for row in range(row_of[number] + 1, row_of[succ]):
                dummy = len(nodes)
                nodes.append(Node("dummy", [], preds=[chain[-1]]))
                if chain[-1] != number:
                    nodes[chain[-1]].succs.append(dummy)
                rows[row].append(dummy)
                chain.append(dummy)
            nodes[chain[-1]].succs.append(succ)
            nodes[number].succs[position] = chain[1]
            nodes[succ].preds[nodes[succ].preds.index(number)] = chain[-1]
    return rows


def _crossings(rows: list[list[int]], nodes: list[Node]) -> int:
    """Edge crossings between consecutive rows: pairs of edges whose ends are in opposite orders."""
    total = 0
    for upper, lower in itertools.pairwise(rows):
        where = {number: i for i, number in enumerate(lower)}
        ends = np.array([(i, where[s]) for i, n in enumerate(upper) for s in nodes[n].succs], dtype=float)
        up, down = ends.reshape(-1, 2).T
        total += int(((up[:, None] - up[None, :]) * (down[:, None] - down[None, :]) < 0).sum()) // 2
    return total


def _mean_at(linked: list[int], where, fallback: float) -> float:
    """The mean of ``where[n]`` over the linked nodes (a barycenter), or ``fallback`` if there are none."""
    return sum(where[n] for n in linked) / len(linked) if linked else fallback


def _order(rows: list[list[int]], nodes: list[Node], sweeps: int = 8) -> list[list[int]]:
    """Barycenter heuristic: sort each row by the mean relative position of its neighbours in the row
    above (downward sweeps) or below (upward sweeps); return the ordering with the fewest crossings."""
    best, best_crossings = [list(row) for row in rows], _crossings(rows, nodes)
    for sweep in range(sweeps):
        downward = sweep % 2 == 0
        for r in range(1, len(rows)) if downward else range(len(rows) - 2, -1, -1):
            reference = rows[r - 1] if downward else rows[r + 1]
            where = {number: i / max(len(reference) - 1, 1) for i, number in enumerate(reference)}
            row = rows[r]
            keys = [_mean_at(nodes[n].preds if downward else nodes[n].succs, where, i / max(len(row) - 1, 1))
                    for i, n in enumerate(row)]
            rows[r] = [n for _, n in sorted(zip(keys, row), key=lambda pair: pair[0])]
        crossings = _crossings(rows, nodes)
        if crossings < best_crossings:
            best, best_crossings = [list(row) for row in rows], crossings
    return best


def _place_row(row: list[int], nodes: list[Node], desired: list[float]) -> list[float]:
    """x for each node, as close to ``desired`` as the order and the gaps allow: the mean of a
    left-to-right and a right-to-left greedy placement (both keep the gaps, so their mean does too)."""
    def gap(a: int, b: int) -> float:
        real = nodes[a].kind != "dummy" and nodes[b].kind != "dummy"
        return (nodes[a].width + nodes[b].width) / 2 + (NODE_GAP if real else DUMMY_GAP)

    left, right = list(desired), list(desired)
    for i in range(1, len(row)):
        left[i] = max(left[i], left[i - 1] + gap(row[i - 1], row[i]))
    for i in range(len(row) - 2, -1, -1):
        right[i] = min(right[i], right[i + 1] - gap(row[i], row[i + 1]))
    return [(a + b) / 2 for a, b in zip(left, right)]


def _neighbours(node: Node, downward: bool, both: bool) -> list[int]:
    """The nodes a node is pulled towards: those of the row above (downward) or below, or both."""
    if both or node.kind == "dummy":
        return node.preds + node.succs
    return node.preds if downward else node.succs


def _coordinates(rows: list[list[int]], nodes: list[Node], sweeps: int = 40,
                 row_gap: float = ROW_GAP) -> tuple[list, list]:
    """Centers (x, y) in points. x: sweeps down and up, moving each node towards the mean x of its
    neighbours in the previous row of the sweep (dummies and, in the last two sweeps, every node: towards
    all neighbours, which straightens long edges). y: rows stacked with ``row_gap`` between them."""
    x = [0.0] * len(nodes)
    for sweep in range(-1, sweeps):  # sweep −1 packs each row around 0
        downward = sweep % 2 == 0
        for row in rows if downward else reversed(rows):
            both = sweep >= sweeps - 2
            desired = [_mean_at(_neighbours(nodes[n], downward, both), x, x[n]) if sweep >= 0 else 0.0
                       for n in row]
            for number, value in zip(row, _place_row(row, nodes, desired)):
                x[number] = value
    shift = MARGIN - min(x[n] - nodes[n].width / 2 for n in range(len(nodes)))
    x = [value + shift for value in x]
    y, top = [0.0] * len(nodes), MARGIN + 18.0  # room for the legend
    for row in rows:
        height = max(nodes[n].height for n in row)
        for number in row:
            y[number] = top + height / 2
        top += height + row_gap
    return x, y


def _spline(points: list[tuple[float, float]], path_type):
    """A smooth matplotlib Path through points: cubic Hermite (Catmull-Rom) segments, tangents vertical
    at both ends (leaving and entering boxes straight down) and along the chord of the neighbours inside."""
    xy = np.asarray(points, dtype=float)
    tangents = np.empty_like(xy)
    tangents[1:-1] = (xy[2:] - xy[:-2]) / 2
    tangents[0] = (0.0, xy[1, 1] - xy[0, 1])
    tangents[-1] = (0.0, xy[-1, 1] - xy[-2, 1])
    vertices, codes = [xy[0]], [path_type.MOVETO]
    for i in range(len(xy) - 1):
        vertices += [xy[i] + tangents[i] / 3, xy[i + 1] - tangents[i + 1] / 3, xy[i + 1]]
        codes += [path_type.CURVE4] * 3
    return path_type(vertices, codes)


def _entries(nodes: list[Node], x: list, target: int) -> list[float]:
    """Where each edge into ``target`` meets its top (x, parallel to ``preds``): spread over 80% of its
    width in the order of where the edges come from, so that their labels keep apart."""
    preds, center = nodes[target].preds, x[target]
    if len(preds) < 2:
        return [center] * len(preds)
    spacing = 0.8 * nodes[target].width / (len(preds) - 1)
    ranks = sorted(range(len(preds)), key=lambda k: (x[preds[k]], k))
    entries = [0.0] * len(preds)
    for rank, k in enumerate(ranks):
        entries[k] = center + (rank - (len(preds) - 1) / 2) * spacing
    return entries


def _edge_points(nodes: list[Node], x: list, y: list, pred: int, target: int,
                 entry: float) -> list[tuple[float, float]]:
    """The points of the edge from ``pred`` (a real node, or the dummy next to ``target``) down to
    ``target``: the source's bottom, each dummy slot, the target's top at x = ``entry``."""
    points = [(entry, y[target] - nodes[target].height / 2)]
    while nodes[pred].kind == "dummy":  # a long edge passes through its dummy slots
        points.append((x[pred], y[pred]))
        pred = nodes[pred].preds[0]
    points.append((x[pred], y[pred] + nodes[pred].height / 2))
    return points[::-1]


def _along(start: tuple[float, float], end: tuple[float, float], fraction: float) -> tuple[float, float]:
    """The point ``fraction`` of the way from ``start`` to ``end``."""
    return start[0] + fraction * (end[0] - start[0]), start[1] + fraction * (end[1] - start[1])


def draw_graph(tensor: Tensor, path: str | Path, show_grad_norms: bool = False, *, grads: bool = False,
               backward: bool = False, names: dict[int, str] | None = None, module=None,
               dpi: int = 150) -> Path:
    """Draw the graph that produced ``tensor`` to a PNG with matplotlib (no Graphviz); returns the path.

    The graph must be intact: call it before ``tensor.backward()``, which frees the graph (a RuntimeError
    says so), or after ``backward(retain_graph=True)``. ``grads=True`` writes ‖∂L/∂t‖₂ on every tensor
    that requires grad, intermediates included; ``backward=True`` also draws the backward pass, the
    gradient flowing back along each edge (dashed red, labelled with its norm). Both run the backward pass
    again on the side (``gradient_flow``; no ``.grad`` is touched), so ``tensor`` must be a single-element
    loss. ``show_grad_norms`` is the former name of ``grads``, kept so that older calls still work.
    ``names`` ({id(tensor): name}) and ``module`` (its parameters, and the intermediates it names) label
    tensors. The figure grows with the graph, one row of boxes per layer in 6.5 pt text, so a graph of a
    few hundred nodes stays readable; the dpi drops where a side would pass 30,000 pixels.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
    from matplotlib.path import Path as CurvePath

    nodes = build_graph(tensor, names=names, module=module, grads=grads or show_grad_norms, backward=backward,
                        caller="draw_graph")
    for node in nodes:
        node.width = max(len(line) for line in node.lines) * CHAR_WIDTH * FONT_SIZE + 2 * PAD + 4
        node.height = len(node.lines) * LINE_HEIGHT * FONT_SIZE + 2 * PAD
    real = len(nodes)
    rows = _order(_layers(nodes), nodes)
    x, y = _coordinates(rows, nodes, row_gap=BACKWARD_ROW_GAP if backward else ROW_GAP)
    width = max(max(x[n] + nodes[n].width / 2 for n in range(len(nodes))) + MARGIN, 420.0)
    height = max(y[n] + nodes[n].height / 2 for n in range(real)) + MARGIN

    figure = Figure(figsize=(width / 72, height / 72))
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)  # y grows downwards, in points
    axes.axis("off")
    label_box = {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}
    text_style = {"ha": "center", "va": "center", "family": "DejaVu Sans Mono", "fontsize": FONT_SIZE - 0.5,
                  "zorder": 4, "bbox": label_box}
    for number, node in enumerate(nodes[:real]):
        style, root = "round" if node.kind == "op" else "square", number == 0
        axes.add_patch(FancyBboxPatch(
            (x[number] - node.width / 2 + PAD, y[number] - node.height / 2 + PAD), node.width - 2 * PAD,
            node.height - 2 * PAD, boxstyle=f"{style},pad={PAD}", facecolor=COLORS[node.kind],
            edgecolor=ROOT_COLOR if root else EDGE_COLOR, linewidth=1.4 if root else 0.5, zorder=2))
        axes.text(x[number], y[number], "\n".join(node.lines), ha="center", va="center", zorder=3,
                  family="DejaVu Sans Mono", fontsize=FONT_SIZE, linespacing=LINE_HEIGHT)
        for pred, name, grad, entry in zip(node.preds, node.pred_labels, node.pred_grads,
                                           _entries(nodes, x, number)):
            points = _edge_points(nodes, x, y, pred, number, entry)
            axes.add_patch(FancyArrowPatch(path=_spline(points, CurvePath), color="#555555", linewidth=0.5,
                                           arrowstyle="-|>,head_length=3,head_width=1.5", zorder=1))
            if name:
                label_at = _along(points[-2], points[-1], 0.65 if backward else 0.5)  # near the op
                axes.text(*label_at, name, color=INPUT_COLOR, **text_style)
            if grad is not None:
                shifted = [(px + BACKWARD_SHIFT, py) for px, py in points[::-1]]
                axes.add_patch(FancyArrowPatch(
                    path=_spline(shifted, CurvePath), color=BACKWARD_COLOR, linewidth=0.6,
                    linestyle=(0, (3, 2)), arrowstyle="-|>,head_length=3,head_width=1.5", zorder=1))
                tip_x, tip_y = _along(points[0], points[1], 0.3)  # near the arrow's head
                axes.text(tip_x + BACKWARD_SHIFT, tip_y, grad, color=BACKWARD_COLOR, **text_style)
    handles = [Patch(facecolor=COLORS[kind], edgecolor=EDGE_COLOR, label=text)
               for kind, text in LEGEND.items()]
    handles.append(Patch(facecolor="white", edgecolor=ROOT_COLOR, linewidth=1.4, label="root"))
    if backward:
        handles.append(Line2D([], [], color=BACKWARD_COLOR, linestyle=(0, (3, 2)), linewidth=0.8,
                              label="‖∂L/∂t‖₂ flowing back"))
    axes.legend(handles=handles, loc="upper left", ncol=len(handles), fontsize=FONT_SIZE, frameon=False,
                bbox_to_anchor=(0, 1), borderaxespad=0.3, handlelength=1.2, columnspacing=1.0)
    path = Path(path)
    figure.savefig(path, dpi=min(dpi, MAX_PIXELS / (max(width, height) / 72)))
    return path
