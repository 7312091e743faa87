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
ACTIVATION = ("tests/ops/test_activation.py", "tests/ops/test_kinks.py")
REDUCE = ("tests/ops/test_reduce.py", "tests/ops/test_kinks.py")
SHAPE = ("tests/ops/test_shape.py", "tests/ops/test_kinks.py")
LOSS = ("tests/ops/test_loss.py",)
CONV = ("tests/ops/test_conv.py",)
OPTIM = ("tests/optim/test_optim.py", "tests/kernels/test_kernel.py")

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

# Fused kernels: the CUDA body (compiled as a C loop on the CPU: only numpy runs it) and the twin (compared bit
# for bit with the compiled loop in the numpy run; strict runs twins only as CuPy's stand-in, so a twin's
# rounding, or its NaN and inf·0 conventions, need not show there)
KERNELS = ("tests/kernels/test_differential.py", "tests/kernels/test_kernel.py")
NUMPY_RUN = ("numpy",)  # code only the numpy run reaches (the C loops), or tests that need not run twice
MUTANTS += [
    Mutant("relu body: -0 kept, NaN zeroed", "tinyae/ops/activation.py",
           '"y = x <= 0 ? (T)0 : x"', '"y = !(x > 0) ? (T)0 : x"', KERNELS, NUMPY_RUN),
    Mutant("relu twin: fmax drops NaN", "tinyae/ops/activation.py",
           "lambda x: array_module(x).maximum(x, x.dtype.type(0))", "lambda x: array_module(x).fmax(x, x.dtype.type(0))",
           KERNELS, NUMPY_RUN),
    Mutant("relu_backward body: passes at 0", "tinyae/ops/activation.py",
           '"grad_x = out > 0 ? grad_out : (T)0"', '"grad_x = out >= 0 ? grad_out : (T)0"', KERNELS, NUMPY_RUN),
    Mutant("relu_backward twin: inf·0 is NaN", "tinyae/ops/activation.py",
           "lambda grad_out, out: array_module(out).where(out > 0, grad_out, grad_out.dtype.type(0))",
           "lambda grad_out, out: grad_out * (out > 0)", KERNELS, NUMPY_RUN),
    Mutant("leaky_relu_backward body: branches swapped", "tinyae/ops/activation.py",
           '"grad_x = positive ? grad_out : grad_out * slope"', '"grad_x = positive ? grad_out * slope : grad_out"',
           KERNELS, NUMPY_RUN),
    Mutant("leaky_relu_backward twin: factors swapped", "tinyae/ops/activation.py",
           "positive, grad_out.dtype.type(1), slope),", "positive, slope, grad_out.dtype.type(1)),", KERNELS),
    Mutant("leaky_relu: slope 1 at 0", "tinyae/ops/activation.py",
           "        self.positive = x > 0\n", "        self.positive = x >= 0\n", ACTIVATION),
    Mutant("sigmoid_backward body: y(y − 1)", "tinyae/ops/activation.py",
           '"grad_x = grad_out * (out * (1 - out))"', '"grad_x = grad_out * (out * (out - 1))"', KERNELS, NUMPY_RUN),
    Mutant("sigmoid_backward twin: regrouped", "tinyae/ops/activation.py",
           "lambda grad_out, out: grad_out * (out * (1 - out))", "lambda grad_out, out: grad_out * out * (1 - out)",
           KERNELS, NUMPY_RUN),
    Mutant("tanh_backward body: 1 + y²", "tinyae/ops/activation.py",
           '"grad_x = grad_out * (1 - out * out)"', '"grad_x = grad_out * (1 + out * out)"', KERNELS, NUMPY_RUN),
    Mutant("tanh_backward twin: factored", "tinyae/ops/activation.py",
           "lambda grad_out, out: grad_out * (1 - out * out)", "lambda grad_out, out: grad_out * (1 - out) * (1 + out)",
           KERNELS, NUMPY_RUN),
    Mutant("softplus_backward body: 1 − σ", "tinyae/ops/activation.py",
           '"grad_x = linear ? grad_out : grad_out * (exp_scaled / (exp_scaled + 1))"',
           '"grad_x = linear ? grad_out : grad_out * (1 / (exp_scaled + 1))"', KERNELS, NUMPY_RUN),
    Mutant("softplus_backward twin: 1 − σ", "tinyae/ops/activation.py",
           "linear, grad_out.dtype.type(1), exp_scaled / (exp_scaled + 1)),",
           "linear, grad_out.dtype.type(1), 1 / (exp_scaled + 1)),", KERNELS),
    Mutant("bce body: x − x·t cancels", "tinyae/ops/loss.py",
           "loss = (x >= 0 ? (1 - target) * x : -(target * x)) + log1p(e);",
           "loss = (x >= 0 ? x - target * x : -(target * x)) + log1p(e);", KERNELS, NUMPY_RUN),
    Mutant("bce body: log(1 + e) for log1p", "tinyae/ops/loss.py",
           "loss = (x >= 0 ? (1 - target) * x : -(target * x)) + log1p(e);",
           "loss = (x >= 0 ? (1 - target) * x : -(target * x)) + log(1 + e);", KERNELS, NUMPY_RUN),
    Mutant("bce body: σ(x) for x < 0", "tinyae/ops/loss.py",
           "slope = (x >= 0 ? 1 / (1 + e) : e / (1 + e)) - target;",
           "slope = (x >= 0 ? 1 / (1 + e) : 1 / (1 + e)) - target;", KERNELS, NUMPY_RUN),
    Mutant("bce body: e^(−x) overflows", "tinyae/ops/loss.py",
           "T e = exp(-fabs(x));", "T e = exp(-x);", KERNELS, NUMPY_RUN),
    Mutant("bce twin: log1p correction sign", "tinyae/ops/loss.py",
           "    correction -= e\n", "    correction += e\n", KERNELS),
    Mutant("bce twin: σ from min", "tinyae/ops/loss.py",
           "slope = xp.maximum(e, positive)", "slope = xp.minimum(e, positive)", KERNELS),
    Mutant("kl body: expm1 as exp − 1", "tinyae/ops/loss.py",
           "half_expm1 = (T)0.5 * expm1(logvar);", "half_expm1 = (T)0.5 * (exp(logvar) - 1);", KERNELS, NUMPY_RUN),
    Mutant("kl body: + logvar", "tinyae/ops/loss.py",
           "kl = (T)0.5 * (mu * mu - logvar) + half_expm1;", "kl = (T)0.5 * (mu * mu + logvar) + half_expm1;",
           KERNELS, NUMPY_RUN),
    Mutant("kl twin: expm1 as exp − 1", "tinyae/ops/loss.py",
           "half_expm1 = 0.5 * array_module(logvar).expm1(logvar)",
           "half_expm1 = 0.5 * (array_module(logvar).exp(logvar) - 1)", KERNELS, NUMPY_RUN),
    Mutant("reparameterize body: e^lv", "tinyae/ops/sampling.py",
           "T std_eps = exp((T)0.5 * logvar) * eps;", "T std_eps = exp(logvar) * eps;", KERNELS, NUMPY_RUN),
    Mutant("reparameterize body: ∂z/∂lv without ½", "tinyae/ops/sampling.py",
           "half_std_eps = (T)0.5 * std_eps;", "half_std_eps = std_eps;", KERNELS, NUMPY_RUN),
    Mutant("reparameterize twin: ∂z/∂lv without ½", "tinyae/ops/sampling.py",
           "return mu + std_eps, 0.5 * std_eps", "return mu + std_eps, std_eps", KERNELS),
    Mutant("adam body: decay always on", "tinyae/optim/adam.py",
           "T g = weight_decay == 0 ? grad : grad + weight_decay * param;", "T g = grad + weight_decay * param;",
           KERNELS, NUMPY_RUN),
    Mutant("adam body: first moment weighted by β₂", "tinyae/optim/adam.py",
           "exp_avg += (g - exp_avg) * one_minus_beta1;", "exp_avg += (g - exp_avg) * beta2;", KERNELS, NUMPY_RUN),
    Mutant("adam body: bias correction inside the root", "tinyae/optim/adam.py",
           "param += -step_size * exp_avg / (sqrt(exp_avg_sq) / bias_correction2_sqrt + eps);",
           "param += -step_size * exp_avg / (sqrt(exp_avg_sq / bias_correction2_sqrt) + eps);", KERNELS, NUMPY_RUN),
    Mutant("adam twin: second moment decays by 1 − β₂", "tinyae/optim/adam.py",
           "squared *= grad\n    exp_avg_sq *= beta2\n", "squared *= grad\n    exp_avg_sq *= one_minus_beta2\n", KERNELS),
    Mutant("adam twin: update sign", "tinyae/optim/adam.py",
           "update /= denom\n    param += update", "update /= denom\n    param -= update", KERNELS),
]

# The engine, the kernel mechanism, the compiler and strict's refusals
ENGINE = ("tests/test_autograd.py", "tests/test_versions.py", "tests/ops/test_arithmetic.py")
MUTANTS += [
    Mutant("engine: a second consumer's gradient replaces the first", "tinyae/autograd.py",
           "                total = previous + input_grad\n", "                total = input_grad\n", ENGINE),
    Mutant("engine: min-heap runs producers before consumers", "tinyae/autograd.py",
           "heapq.heappush(pending, (-value._fn.sequence, value))", "heapq.heappush(pending, (value._fn.sequence, value))",
           ENGINE),
    Mutant("engine: gradient count unchecked when short", "tinyae/autograd.py",
           "        if len(input_grads) != len(function.inputs):\n", "        if len(input_grads) > len(function.inputs):\n",
           ENGINE),
    Mutant("engine: gradient shape unchecked", "tinyae/autograd.py",
           "            if (type(input_grad) is not type(data) or input_grad.shape != data.shape\n",
           "            if (type(input_grad) is not type(data)\n", ENGINE),
    Mutant("engine: versions never checked", "tinyae/autograd.py",
           "        if function.writes != _writes:\n", "        if False:\n", ENGINE),
    Mutant(".grad arrays may share memory", "tinyae/autograd.py",
           "    if owner in stored:\n", "    if False:\n", ENGINE),
    Mutant("compiled loop: a copy in another layout freed before the call", "tinyae/kernels/cloop.py",
           "                copies.append(copy)\n", "", KERNELS, NUMPY_RUN),
    Mutant("compiled loop: exceptions ignored", "tinyae/kernels/cloop.py",
           "        flags = function(*call)\n        if flags and _raised(flags):",
           "        flags = function(*call)\n        if False:", KERNELS, NUMPY_RUN),
    Mutant("kernel: a NumPy scalar goes to CuPy", "tinyae/kernels/__init__.py",
           "        if isinstance(first, np.generic):  # a NumPy scalar", "        if False:  # a NumPy scalar",
           KERNELS + ("tests/test_autograd.py",), NUMPY_RUN),
    Mutant("compiler: cached library loaded unchecked", "tinyae/kernels/compiler.py",
           "            if hashlib.sha256(entry.read_bytes()).hexdigest() != digest:\n",
           "            if False:\n", ("tests/kernels/test_compiler.py",), NUMPY_RUN),
    Mutant("strict: NumPy arrays accepted as operands", "tinyae/backend/strict.py",
           "    if isinstance(other, _SCALARS):\n        return other\n    raise _operand_error(other)",
           "    if isinstance(other, (_SCALARS, np.ndarray)):\n        return other\n    raise _operand_error(other)",
           ("tests/backend", "tests/test_backend.py"), NUMPY_RUN),
    Mutant("strict: host data accepted where CuPy wants a device array", "tinyae/backend/strict.py",
           '        raise _parameter_error(where, parameter, value, "a strict (CuPy-like) array")\n    if kind == "B"',
           '        return value\n    if kind == "B"', ("tests/backend", "tests/test_backend.py"), NUMPY_RUN),
    Mutant("strict: implicit conversion allowed", "tinyae/backend/strict.py",
           '''    def __array__(self, *args, **kwargs):
        raise TypeError(''', '''    def __array__(self, *args, **kwargs):
        return self._array
        raise TypeError(''', ("tests/backend", "tests/test_backend.py"), NUMPY_RUN),
]
