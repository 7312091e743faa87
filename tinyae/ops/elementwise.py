"""Elementwise functions: exp, log, sqrt, abs, clip, maximum, minimum, where.

For y = f(x) applied elementwise, the Jacobian is diagonal, so the chain rule is a product:
∂L/∂x = ∂L/∂y ⊙ f′(x). Where f′ is a function of y (exp, sqrt), the output is saved instead of the input.
"""

from __future__ import annotations

from ..autograd import Function
from ..backend import array_module, xp_of
from .arithmetic import sum_to_shape


class Exp(Function):
    """y = eˣ.   ∂L/∂x = ∂L/∂y ⊙ y   (saves y)."""

    def forward(self, x):
        self.out = array_module(x).exp(x)
        return self.out

    def backward(self, grad_out):
        return grad_out * self.out


class Log(Function):
    """y = ln x.   ∂L/∂x = ∂L/∂y / x   (saves x)."""

    def forward(self, x):
        self.x = x
        return array_module(x).log(x)

    def backward(self, grad_out):
        return grad_out / self.x


class Sqrt(Function):
    """y = √x.   ∂L/∂x = ∂L/∂y / (2y)   (saves y; infinite at x = 0, as the derivative is)."""

    def forward(self, x):
        self.out = array_module(x).sqrt(x)
        return self.out

    def backward(self, grad_out):
        return grad_out / (2 * self.out)


class Abs(Function):
    """y = |x|.   ∂L/∂x = ∂L/∂y ⊙ sign(x), with the subgradient sign(0) = 0 at the kink."""

    def forward(self, x):
        self.x = x
        return abs(x)

    def backward(self, grad_out):
        return grad_out * array_module(self.x).sign(self.x)


class Clip(Function):
    """y = min(max(x, low), high), either bound optional (None).

    ∂L/∂x = ∂L/∂y where low ≤ x ≤ high, else 0. At x equal to a bound the gradient passes (as PyTorch).
    """

    def forward(self, x, low=None, high=None):
        xp = array_module(x)
        self.x, self.low, self.high = x, low, high
        if low is not None and high is not None:
            return xp.clip(x, low, high)
        if low is not None:
            return xp.maximum(x, low)
        if high is not None:
            return xp.minimum(x, high)
        raise ValueError("clip: at least one of min and max must be given")

    def backward(self, grad_out):
        x = self.x
        inside = True
        if self.low is not None:
            inside = x >= self.low
        if self.high is not None:
            inside = inside & (x <= self.high)
        return grad_out * inside


class Maximum(Function):
    """y = max(a, b) elementwise, with broadcasting.

    ∂L/∂a = sum_to_shape(∂L/∂y ⊙ [a > b]) and ∂L/∂b likewise with [b > a]; at ties (a = b) the gradient
    is split evenly, half to each (as PyTorch).
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return xp_of(a, b).maximum(a, b)

    def backward(self, grad_out):
        return _split_by_winner(self, grad_out, self.a > self.b, self.b > self.a)


class Minimum(Function):
    """y = min(a, b) elementwise; as ``Maximum`` with [a < b]; ties split evenly."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return xp_of(a, b).minimum(a, b)

    def backward(self, grad_out):
        return _split_by_winner(self, grad_out, self.a < self.b, self.b < self.a)


def _split_by_winner(function: Function, grad_out, a_wins, b_wins):
    """Route ∂L/∂y to the operand that was selected; half to each at ties."""
    a, b = function.a, function.b
    tie_share = (grad_out * 0.5) * (a == b)
    need_a, need_b = function.needs_input_grad
    grad_a = sum_to_shape(grad_out * a_wins + tie_share, a.shape) if need_a else None
    grad_b = sum_to_shape(grad_out * b_wins + tie_share, b.shape) if need_b else None
    return grad_a, grad_b


class Where(Function):
    """y = a where cond else b, with broadcasting (cond is not differentiable).

    ∂L/∂a = sum_to_shape(∂L/∂y where cond else 0),  ∂L/∂b = sum_to_shape(0 where cond else ∂L/∂y).
    Only the selected side receives gradient; the other side's value never matters, but it must still be
    finite to keep the forward free of warnings (evaluate log/sqrt on a sanitized input).
    """

    def forward(self, cond, a, b):
        xp = xp_of(cond, a, b)
        self.cond = cond
        self.a_shape = getattr(a, "shape", None)
        self.b_shape = getattr(b, "shape", None)
        return xp.where(cond, a, b)

    def backward(self, grad_out):
        _, need_a, need_b = self.needs_input_grad
        xp = array_module(grad_out)
        zero = grad_out.dtype.type(0)
        return (
            None,
            sum_to_shape(xp.where(self.cond, grad_out, zero), self.a_shape) if need_a else None,
            sum_to_shape(xp.where(self.cond, zero, grad_out), self.b_shape) if need_b else None,
        )
