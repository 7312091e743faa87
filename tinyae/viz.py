"""The computation graph that produced a tensor: a PNG drawn with matplotlib alone, or Graphviz DOT text.

    loss, _ = model.loss(x)
    viz.draw_graph(loss, "graph.png", module=model)          # before backward, which frees the graph
    loss.backward(retain_graph=True)                         # or keep it, to show the gradients too
    viz.draw_graph(loss, "grads.png", module=model, show_grad_norms=True)

The graph is bipartite and drawn in the direction the data flows, each input → op → its output, the root
(the tensor passed in) at the bottom. Tensor nodes show their shape and dtype, the name of a parameter
(from ``names={id(tensor): name}`` or ``module=``'s ``named_parameters``) and optionally ‖∂L/∂t‖₂ of the
tensors that hold a ``.grad``. Op nodes show the Function's class name, and Python numbers among its
operands in place (``Div(·, 64)`` is t / 64). Arrays passed to an op as constants (reparameterize's ε) are
no-grad nodes. Colors: green, a leaf that requires grad (a parameter); blue, an intermediate result; gray,
no grad (data, constants); yellow, an op; the root is outlined in red.

Layout (a small Sugiyama scheme): each node's layer is its longest path to the root, so every edge points
down; edges spanning several layers pass through one dummy slot per layer; a few barycenter sweeps order
each layer (keeping the ordering with the fewest crossings), and x positions are relaxed towards the mean
of each node's neighbours while keeping boxes apart. The graph is walked iteratively, never recursively.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import backend
from .tensor import Tensor

ROOT_COLOR, EDGE_COLOR = "#d62728", "#666666"
COLORS = {"leaf": "#c6e5b3", "intermediate": "#cfe0f3", "constant": "#e4e4e4", "op": "#fff0c2"}
LEGEND = {"leaf": "leaf, requires grad", "intermediate": "intermediate", "constant": "no grad / constant",
          "op": "op (Function)"}
FONT_SIZE, CHAR_WIDTH, LINE_HEIGHT, PAD = 6.5, 0.61, 1.22, 3.0  # points; DejaVu Sans Mono's advance width
NODE_GAP, DUMMY_GAP, ROW_GAP, MARGIN = 12.0, 5.0, 24.0, 12.0  # points
MAX_PIXELS = 30000  # per side; the dpi is lowered for larger drawings


@dataclass
class Node:
    """A box of the drawing; ``preds``/``succs`` index the nodes its edges come from and go to."""

    kind: str  # "op", "leaf", "intermediate", "constant" or "dummy" (a long edge crossing a layer)
    lines: list[str]
    width: float = 2.0
    height: float = 0.0
    preds: list[int] = field(default_factory=list)
    succs: list[int] = field(default_factory=list)


def _released_error(caller: str) -> RuntimeError:
    return RuntimeError(
        f"{caller}: the graph that produced this tensor was freed by backward(). Draw it before calling "
        "backward(), or call backward(retain_graph=True) to keep it (needed to show gradient norms)."
    )


def _names(names: dict[int, str] | None, module) -> dict[int, str]:
    labels = dict(names or {})
    if module is not None:
        labels.update((id(parameter), name) for name, parameter in module.named_parameters())
    return labels


def _tensor_lines(value, name: str | None, show_grad_norms: bool) -> list[str]:
    shape = "(" + ", ".join(str(n) for n in value.shape) + ("," if len(value.shape) == 1 else "") + ")"
    lines = ([name] if name else []) + [f"{shape} {value.dtype}"]
    grad = getattr(value, "grad", None)
    if show_grad_norms and grad is not None:
        norm = float(backend.array_module(grad).sqrt((grad * grad).sum()))
        lines.append(f"grad norm {norm:.3g}")
    elif show_grad_norms and getattr(value, "requires_grad", False) and value.is_leaf:
        lines.append("grad None")
    return lines


def _op_label(function) -> str:
    scalars = (int, float, np.generic)
    if not any(isinstance(value, scalars) for value in function.inputs):
        return function.name
    operands = [f"{value:g}" if isinstance(value, scalars) else "·"
                for value in function.inputs if value is not None]
    return f"{function.name}({', '.join(operands)})"


def build_graph(root: Tensor, *, names: dict[int, str] | None = None, module=None,
                show_grad_norms: bool = False, caller: str = "build_graph") -> list[Node]:
    """The nodes of the graph behind ``root`` (node 0), linked by data-flow edges (``preds``/``succs``)."""
    labels = _names(names, module)
    index: dict[int, int] = {}
    nodes: list[Node] = []

    def add(kind: str, lines: list[str], key: int | None = None) -> int:
        if key is not None:
            index[key] = len(nodes)
        nodes.append(Node(kind, lines))
        return len(nodes) - 1

    def tensor_kind(value: Tensor) -> str:
        return "constant" if not value.requires_grad else "leaf" if value._fn is None else "intermediate"

    add(tensor_kind(root), _tensor_lines(root, labels.get(id(root)), show_grad_norms), id(root))
    stack = [root]
    while stack:
        tensor = stack.pop()
        function = tensor._fn
        if function is None:
            continue
        if function.inputs is None:
            raise _released_error(caller)
        op = add("op", [_op_label(function)])
        nodes[op].succs.append(index[id(tensor)])
        nodes[index[id(tensor)]].preds.append(op)
        for value in reversed(function.inputs):  # reversed: the first input is explored first
            if not (isinstance(value, Tensor) or backend.is_array(value)):
                continue  # Python numbers are in the op's label; None is an absent optional input
            if id(value) not in index:
                kind = tensor_kind(value) if isinstance(value, Tensor) else "constant"
                add(kind, _tensor_lines(value, labels.get(id(value)), show_grad_norms), id(value))
                if isinstance(value, Tensor):
                    stack.append(value)
            nodes[index[id(value)]].succs.append(op)
            nodes[op].preds.insert(0, index[id(value)])
    return nodes


def to_dot(tensor: Tensor, *, names: dict[int, str] | None = None, module=None,
           show_grad_norms: bool = False) -> str:
    """Graphviz DOT text of the graph behind ``tensor`` (render with ``dot -Tpng graph.dot -o graph.png``).

    Same nodes, labels and colors as ``draw_graph``; one edge per (input, op) pair and one per op output.
    Raises RuntimeError if backward() has already freed the graph.
    """
    nodes = build_graph(tensor, names=names, module=module, show_grad_norms=show_grad_norms, caller="to_dot")
    lines = ["digraph tinyae {", '  node [fontname="monospace", fontsize=10, style=filled];']
    for number, node in enumerate(nodes):
        label = "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in node.lines)
        shape = "ellipse" if node.kind == "op" else "box"
        extra = f', color="{ROOT_COLOR}", penwidth=2' if number == 0 else ""
        lines.append(f'  n{number} [label="{label}", shape={shape}, fillcolor="{COLORS[node.kind]}"{extra}];')
    lines += [f"  n{number} -> n{succ};" for number, node in enumerate(nodes) for succ in node.succs]
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


def _coordinates(rows: list[list[int]], nodes: list[Node], sweeps: int = 40) -> tuple[list, list]:
    """Centers (x, y) in points. x: sweeps down and up, moving each node towards the mean x of its
    neighbours in the previous row of the sweep (dummies and, in the last two sweeps, every node: towards
    all neighbours, which straightens long edges). y: rows stacked with ROW_GAP between them."""
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
        top += height + ROW_GAP
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


def draw_graph(tensor: Tensor, path: str | Path, show_grad_norms: bool = False, *,
               names: dict[int, str] | None = None, module=None, dpi: int = 150) -> Path:
    """Draw the graph that produced ``tensor`` to a PNG with matplotlib (no Graphviz); returns the path.

    Call it before ``tensor.backward()``, which frees the graph (a RuntimeError says so), or after
    ``backward(retain_graph=True)``: then ``show_grad_norms=True`` adds ‖∂L/∂t‖₂ to every tensor that has
    a ``.grad`` (the leaves). ``names`` ({id(tensor): name}) and ``module`` (its named_parameters) label
    tensors. The figure grows with the graph, one row of boxes per layer in 6.5 pt text, so a graph of a
    few hundred nodes stays readable; the dpi drops where a side would pass 30,000 pixels.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
    from matplotlib.path import Path as CurvePath

    nodes = build_graph(tensor, names=names, module=module, show_grad_norms=show_grad_norms,
                        caller="draw_graph")
    for node in nodes:
        node.width = max(len(line) for line in node.lines) * CHAR_WIDTH * FONT_SIZE + 2 * PAD + 4
        node.height = len(node.lines) * LINE_HEIGHT * FONT_SIZE + 2 * PAD
    real = len(nodes)
    rows = _order(_layers(nodes), nodes)
    x, y = _coordinates(rows, nodes)
    width = max(max(x[n] + nodes[n].width / 2 for n in range(len(nodes))) + MARGIN, 360.0)
    height = max(y[n] + nodes[n].height / 2 for n in range(real)) + MARGIN

    figure = Figure(figsize=(width / 72, height / 72))
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)  # y grows downwards, in points
    axes.axis("off")
    for number, node in enumerate(nodes[:real]):
        style, root = "round" if node.kind == "op" else "square", number == 0
        axes.add_patch(FancyBboxPatch(
            (x[number] - node.width / 2 + PAD, y[number] - node.height / 2 + PAD), node.width - 2 * PAD,
            node.height - 2 * PAD, boxstyle=f"{style},pad={PAD}", facecolor=COLORS[node.kind],
            edgecolor=ROOT_COLOR if root else EDGE_COLOR, linewidth=1.4 if root else 0.5, zorder=2))
        axes.text(x[number], y[number], "\n".join(node.lines), ha="center", va="center", zorder=3,
                  family="DejaVu Sans Mono", fontsize=FONT_SIZE, linespacing=LINE_HEIGHT)
    for number in range(real):
        for succ in nodes[number].succs:
            points = [(x[number], y[number] + nodes[number].height / 2)]
            while nodes[succ].kind == "dummy":  # a long edge passes through its dummy slots
                points.append((x[succ], y[succ]))
                succ = nodes[succ].succs[0]
            points.append((x[succ], y[succ] - nodes[succ].height / 2))
            axes.add_patch(FancyArrowPatch(path=_spline(points, CurvePath), color="#555555", linewidth=0.5,
                                           arrowstyle="-|>,head_length=3,head_width=1.5", zorder=1))
    handles = [Patch(facecolor=COLORS[kind], edgecolor=EDGE_COLOR, label=text)
               for kind, text in LEGEND.items()]
    handles.append(Patch(facecolor="white", edgecolor=ROOT_COLOR, linewidth=1.4, label="root"))
    axes.legend(handles=handles, loc="upper left", ncol=5, fontsize=FONT_SIZE, frameon=False,
                bbox_to_anchor=(0, 1), borderaxespad=0.3, handlelength=1.2, columnspacing=1.0)
    path = Path(path)
    figure.savefig(path, dpi=min(dpi, MAX_PIXELS / (max(width, height) / 72)))
    return path
