"""The curated mutants of ``tools/mutate.py``: plausible one-line bugs, each with the tests that must notice it.

A mutant's ``original`` must occur exactly once in its file. ``backends`` are those that must kill it:
both by default; only numpy for a compiled C body (the strict backend runs the twins, never the C loop).
When you add an op or a kernel, add its plausible mutants here and check that the suite kills them.
"""

from __future__ import annotations

from dataclasses import dataclass

BOTH = ("numpy", "strict")


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    backends: tuple[str, ...] = BOTH


ARITHMETIC = ("tests/ops/test_arithmetic.py",)
ELEMENTWISE = ("tests/ops/test_elementwise.py", "tests/ops/test_kinks.py")
ACTIVATION = ("tests/ops/test_activation.py", "tests/ops/test_kinks.py", "tests/kernels")
REDUCE = ("tests/ops/test_reduce.py", "tests/ops/test_kinks.py")
SHAPE = ("tests/ops/test_shape.py", "tests/ops/test_kinks.py")
LOSS = ("tests/ops/test_loss.py", "tests/kernels")
CONV = ("tests/ops/test_conv.py",)
OPTIM = ("tests/optim/test_optim.py", "tests/kernels")

MUTANTS = [
    # Broadcasting undone in one place
    Mutant("sum_to_shape: keep size-1 axes", "tinyae/ops/arithmetic.py",
           "if size == 1 and grad.shape[extra + axis] != 1", "if size == 0 and grad.shape[extra + axis] != 1",
           ARITHMETIC),
    Mutant("sum_to_shape: leading axes kept", "tinyae/ops/arithmetic.py",
           "    extra = grad.ndim - len(shape)", "    extra = 0", ARITHMETIC),
    # Backward formulas
    Mutant("sub: b's gradient not negated", "tinyae/ops/arithmetic.py",
           "            -sum_to_shape(grad_out, self.b_shape) if need_b else None,",
           "            sum_to_shape(grad_out, self.b_shape) if need_b else None,", ARITHMETIC),
    Mutant("mul: a's gradient uses a", "tinyae/ops/arithmetic.py",
           "sum_to_shape(grad_out * self.b, self.a_shape) if need_a else None,",
           "sum_to_shape(grad_out * self.a, self.a_shape) if need_a else None,", ARITHMETIC),
    Mutant("div: b's gradient sign", "tinyae/ops/arithmetic.py",
           "sum_to_shape(-grad_over_b * self.out, self.b_shape)", "sum_to_shape(grad_over_b * self.out, self.b_shape)",
           ARITHMETIC),
    Mutant("pow: exponent's slope b·a^b", "tinyae/ops/arithmetic.py",
           "slope = b * a ** (b - 1)", "slope = b * a ** b", ARITHMETIC),
    Mutant("pow: base's log dropped", "tinyae/ops/arithmetic.py",
           "grad_b = grad_out * self.out * array_module(a).log(safe_a)", "grad_b = grad_out * self.out", ARITHMETIC),
    Mutant("neg: gradient not negated", "tinyae/ops/arithmetic.py",
           "    def backward(self, grad_out):\n        return -grad_out", "    def backward(self, grad_out):\n        return grad_out",
           ARITHMETIC),
    Mutant("exp: gradient from x, not y", "tinyae/ops/elementwise.py",
           "        return grad_out * self.out\n", "        return grad_out * self.out * self.out\n", ELEMENTWISE),
    Mutant("log: multiplies by x", "tinyae/ops/elementwise.py",
           "        return grad_out / self.x", "        return grad_out * self.x", ELEMENTWISE),
    Mutant("sqrt: drops the 2", "tinyae/ops/elementwise.py",
           "        return grad_out / (2 * self.out)", "        return grad_out / self.out", ELEMENTWISE),
    Mutant("abs: sign(0) = 1 at the kink", "tinyae/ops/elementwise.py",
           "        return grad_out * array_module(self.x).sign(self.x)",
           "        return grad_out * array_module(self.x).where(self.x >= 0, 1.0, -1.0)", ELEMENTWISE),
    Mutant("clip: blocks at the lower bound", "tinyae/ops/elementwise.py",
           "            inside = x >= self.low", "            inside = x > self.low", ELEMENTWISE),
    Mutant("clip: blocks at the upper bound", "tinyae/ops/elementwise.py",
           "            inside = inside & (x <= self.high)", "            inside = inside & (x < self.high)", ELEMENTWISE),
    Mutant("maximum: ties to a", "tinyae/ops/elementwise.py",
           "_split_by_winner(self, grad_out, self.a > self.b, self.b > self.a)",
           "_split_by_winner(self, grad_out, self.a >= self.b, self.b > self.a)", ELEMENTWISE),
    Mutant("minimum: winner reversed", "tinyae/ops/elementwise.py",
           "_split_by_winner(self, grad_out, self.a < self.b, self.b < self.a)",
           "_split_by_winner(self, grad_out, self.a > self.b, self.b > self.a)", ELEMENTWISE),
    Mutant("mean: not divided by the count", "tinyae/ops/reduce.py",
           "expand_to(grad_out / self.count, self.shape, self.axes)", "expand_to(grad_out, self.shape, self.axes)",
           REDUCE),
    Mutant("max: ties not split", "tinyae/ops/reduce.py",
           "return is_max * (grad_out.reshape(self.out_kept.shape) / ties)",
           "return is_max * grad_out.reshape(self.out_kept.shape)", REDUCE),
    Mutant("logsumexp: softmax not normalized", "tinyae/ops/reduce.py",
           "return self.exp_shifted * (grad_out.reshape(self.total.shape) / self.total)",
           "return self.exp_shifted * grad_out.reshape(self.total.shape)", REDUCE),
    Mutant("transpose: forward permutation in the backward", "tinyae/ops/shape.py",
           "        return grad_out.transpose(self.inverse)", "        return grad_out.transpose(self.axes)", SHAPE),
    Mutant("getitem: repeated indices assigned, not added", "tinyae/ops/shape.py",
           "            scatter_add(grad_x, self.index, grad_out)", "            grad_x[self.index] = grad_out", SHAPE),
    Mutant("concatenate: slices shifted by one", "tinyae/ops/shape.py",
           "grads.append(grad_out[lead + (slice(start, start + size),)] if needed else None)",
           "grads.append(grad_out[lead + (slice(start + 1, start + size + 1),)] if needed else None)", SHAPE),
    Mutant("matmul: b's gradient from A instead of Aᵀ", "tinyae/ops/matmul.py",
           "grad_b = sum_to_shape(_swap_last(a) @ grad_out, b_matrix_shape)",
           "grad_b = sum_to_shape(a @ grad_out, b_matrix_shape)", ("tests/ops/test_matmul.py",)),
    Mutant("linear: leading axes of x not folded", "tinyae/ops/linear.py",
           "grad_weight = rows.T @ self.x.reshape(-1, self.x.shape[-1]) if need_weight else None",
           "grad_weight = rows.T @ self.x[0] if need_weight else None", ("tests/nn/test_layers.py",)),
    Mutant("linear: bias gradient is a mean", "tinyae/ops/linear.py",
           "grad_bias = rows.sum(axis=0) if need_bias else None", "grad_bias = rows.mean(axis=0) if need_bias else None",
           ("tests/nn/test_layers.py",)),
    Mutant("col2im: windows off by one row", "tinyae/ops/conv.py",
           "    start = stride * first + offset - pad\n", "    start = stride * first + offset - pad + 1\n", CONV),
    Mutant("col2im: last window dropped", "tinyae/ops/conv.py",
           "    last = min(windows, (size - 1 + pad - offset) // stride + 1)",
           "    last = min(windows, (size - 1 + pad - offset) // stride)", CONV),
    Mutant("im2col: kernel offsets swapped", "tinyae/ops/conv.py",
           "            cols[:, i, j] = xpad[_window(i, j, stride, out_size)]",
           "            cols[:, i, j] = xpad[_window(j, i, stride, out_size)]", CONV),
    # Losses
    Mutant("mse: gradient without the 2", "tinyae/ops/loss.py",
           "grad = _grad_per_element(grad_out, self.reduction, self.size) * (2 * self.diff)",
           "grad = _grad_per_element(grad_out, self.reduction, self.size) * self.diff", LOSS),
    Mutant("mean reduction: not divided", "tinyae/ops/loss.py",
           'return grad_out / size if reduction == "mean" else grad_out', "return grad_out", LOSS),
    Mutant("bce: PyTorch's epsilon clamp dropped", "tinyae/ops/loss.py",
           "return (p - t) / array_module(p).maximum((1 - p) * p, p.dtype.type(BCE_EPSILON))",
           "return (p - t) / ((1 - p) * p)", LOSS),
    Mutant("bce with logits: target gradient sign", "tinyae/ops/loss.py",
           "grad_target = _back_to(-(grad * self.x), self.target_dtype)",
           "grad_target = _back_to(grad * self.x, self.target_dtype)", LOSS),
    Mutant("l1: gradient is 1", "tinyae/ops/loss.py",
           "return _grad_per_element(grad_out, self.reduction, self.size) * self.sign",
           "return _grad_per_element(grad_out, self.reduction, self.size) * abs(self.sign)", LOSS),
    Mutant("dropout: survivors not rescaled", "tinyae/ops/sampling.py",
           "scaled_mask = (draws >= p) * x.dtype.type(1 / (1 - p))", "scaled_mask = (draws >= p) * x.dtype.type(1)",
           ("tests/ops/test_sampling.py",)),
    # Optimizers
    Mutant("sgd: dampening applied to the gradient's complement", "tinyae/optim/sgd.py",
           "buffer += (1.0 - dampening) * grad", "buffer += dampening * grad", OPTIM),
    Mutant("sgd: nesterov without the look-ahead", "tinyae/optim/sgd.py",
           "grad = grad + momentum * buffer if nesterov else buffer", "grad = buffer", OPTIM),
    Mutant("sgd: weight decay sign", "tinyae/optim/sgd.py",
           "grad = grad + weight_decay * param.data", "grad = grad - weight_decay * param.data", OPTIM),
    Mutant("adam loop: bias correction 1 off", "tinyae/optim/adam.py",
           "            step_size = lr / bias_correction1\n", "            step_size = lr\n", OPTIM),
    Mutant("adam loop: eps inside the root", "tinyae/optim/adam.py",
           "                denom = xp.sqrt(exp_avg_sq)\n", "                denom = xp.sqrt(exp_avg_sq + eps)\n", OPTIM),
    Mutant("adam fused: bias correction 2 dropped", "tinyae/optim/adam.py",
           "(1.0 - beta2**step) ** 0.5,", "1.0,", OPTIM),
    Mutant("adamw fused: decay coupled", "tinyae/optim/adam.py",
           "float(group[\"eps\"]), 0.0 if decoupled else weight_decay,", "float(group[\"eps\"]), weight_decay,", OPTIM),
]
