"""SGD, Adam and AdamW: updates against hand-computed NumPy references, parameter groups, zero_grad,
state_dict round trips (bitwise), dtype, validation, and (when torch is installed) agreement with torch."""

import numpy as np
import pytest

import tinyae as ta
from tinyae import backend, optim
from tinyae.optim import SGD, Adam, AdamW, Optimizer


def host(value) -> np.ndarray:
    """A NumPy copy of a backend array or Tensor (a copy even on numpy, where updates are in place)."""
    if isinstance(value, ta.Tensor):
        return value.numpy()
    return backend.to_backend(value, "numpy").copy()

STEPS = 6


# A small non-quadratic problem whose gradient is computed on the host ---------------------------------------
def gradient(theta: np.ndarray) -> np.ndarray:
    """∇ of f(θ) = Σ (0.5·(θ − c)² + 0.05·θ⁴) with c = 0.3·index − 0.5: a fixed, smooth, nonlinear field."""
    target = 0.3 * np.arange(theta.size).reshape(theta.shape) - 0.5
    return (theta - target) + 0.2 * theta**3


def make_params(dtype="float64", shapes=((2, 3), (4,))):
    rng = np.random.default_rng(0)
    return [ta.tensor(rng.standard_normal(shape), dtype=dtype, requires_grad=True) for shape in shapes]


def set_grads(params, xp, sign=1.0):
    for param in params:
        theta = host(param.data)
        param.grad = xp.asarray((sign * gradient(theta)).astype(theta.dtype))


def run(optimizer, params, xp, steps=STEPS):
    trajectory = []
    for _ in range(steps):
        set_grads(params, xp)
        optimizer.step()
        trajectory.append([host(p.data) for p in params])
    return trajectory


# Hand-written references: the update equations in plain NumPy float64, one parameter at a time --------------
def sgd_reference(theta, steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                  maximize=False):
    buffer, trajectory = None, []
    for _ in range(steps):
        g = gradient(theta)
        g = -g if maximize else g
        g = g + weight_decay * theta
        if momentum != 0:
            buffer = g.copy() if buffer is None else momentum * buffer + (1 - dampening) * g
            g = g + momentum * buffer if nesterov else buffer
        theta = theta - lr * g
        trajectory.append(theta)
    return trajectory


def adam_reference(theta, steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                   maximize=False, decoupled=False):
    beta1, beta2 = betas
    m = v = v_max = np.zeros_like(theta)
    trajectory = []
    for t in range(1, steps + 1):
        g = gradient(theta)
        g = -g if maximize else g
        if decoupled:
            theta = theta * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = np.maximum(v_max, v)
        m_hat = m / (1 - beta1**t)
        v_hat = (v_max if amsgrad else v) / (1 - beta2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        trajectory.append(theta)
    return trajectory


def check_against_reference(optimizer_cls, kwargs, reference, xp, **reference_extra):
    params = make_params()
    initial = [host(p.data) for p in params]
    trajectory = run(optimizer_cls(params, **kwargs), params, xp)
    for index, theta0 in enumerate(initial):
        expected = reference(theta0, STEPS, **kwargs, **reference_extra)
        for step in range(STEPS):
            np.testing.assert_allclose(trajectory[step][index], expected[step], rtol=1e-12, atol=1e-14,
                                       err_msg=f"parameter {index}, step {step + 1}")


SGD_CONFIGS = [
    {"lr": 0.1},
    {"lr": 0.1, "momentum": 0.9},
    {"lr": 0.1, "momentum": 0.9, "dampening": 0.5},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    {"lr": 0.1, "weight_decay": 0.1},
    {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.2},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1, "maximize": True},
]


@pytest.mark.parametrize("kwargs", SGD_CONFIGS, ids=lambda k: ",".join(k))
def test_sgd_matches_hand_computed_updates(kwargs, xp):
    check_against_reference(SGD, kwargs, sgd_reference, xp)


ADAM_CONFIGS = [
    {"lr": 0.1},
    {"lr": 0.1, "weight_decay": 0.1},
    {"lr": 0.1, "amsgrad": True},
    {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-3, "weight_decay": 0.05, "amsgrad": True},
    {"lr": 0.1, "betas": (0.3, 0.9)},  # 1 − β₁ ≥ 0.5: the other branch of lerp
    {"lr": 0.1, "betas": (0.0, 0.5), "maximize": True},
]


@pytest.mark.parametrize("kwargs", ADAM_CONFIGS, ids=lambda k: ",".join(k))
def test_adam_matches_hand_computed_updates(kwargs, xp):
    check_against_reference(Adam, kwargs, adam_reference, xp)


@pytest.mark.parametrize("kwargs", [{"lr": 0.1}, {"lr": 0.1, "weight_decay": 0.3, "amsgrad": True},
                                    {"lr": 0.1, "weight_decay": 0.0, "betas": (0.5, 0.9)}],
                         ids=lambda k: ",".join(k))
def test_adamw_matches_hand_computed_updates(kwargs, xp):
    full = {"weight_decay": 1e-2, **kwargs}  # AdamW's default weight decay
    params = make_params()
    initial = [host(p.data) for p in params]
    trajectory = run(AdamW(params, **kwargs), params, xp)
    for index, theta0 in enumerate(initial):
        expected = adam_reference(theta0, STEPS, decoupled=True, **full)
        for step in range(STEPS):
            np.testing.assert_allclose(trajectory[step][index], expected[step], rtol=1e-12, atol=1e-14)


def test_one_sgd_momentum_step_written_out(xp):
    """Two steps of SGD with momentum 0.5, dampening 0.5, lr 0.1, weight decay 0.1, by hand."""
    w = ta.tensor([1.0, -2.0], dtype="float64", requires_grad=True)
    optimizer = SGD([w], lr=0.1, momentum=0.5, dampening=0.5, weight_decay=0.1)
    w.grad = xp.asarray(np.array([0.5, 1.0]))
    optimizer.step()  # g = [0.5+0.1, 1-0.2] = [0.6, 0.8]; b = g; w = [1-0.06, -2-0.08]
    np.testing.assert_allclose(host(w.data), [0.94, -2.08], rtol=1e-15)
    optimizer.step()  # g = [0.5+0.094, 1-0.208] = [0.594, 0.792]; b = 0.5·[0.6, 0.8] + 0.5·g
    np.testing.assert_allclose(host(w.data), [0.94 - 0.1 * 0.597, -2.08 - 0.1 * 0.796], rtol=1e-15)


def test_one_adam_step_is_lr_times_sign(xp):
    """At t = 1, m̂ = g and v̂ = g², so Adam moves each coordinate by lr·g/(|g| + eps) ≈ lr·sign(g)."""
    w = ta.tensor([1.0, -2.0, 3.0], dtype="float64", requires_grad=True)
    optimizer = Adam([w], lr=0.01)
    w.grad = xp.asarray(np.array([4.0, -1e-3, 0.0]))
    optimizer.step()
    expected = [1.0 - 0.01 * 4.0 / (4.0 + 1e-8), -2.0 + 0.01 * 1e-3 / (1e-3 + 1e-8), 3.0]
    np.testing.assert_allclose(host(w.data), expected, rtol=1e-13)


# Parameter groups -------------------------------------------------------------------------------------------
def test_parameter_groups_have_their_own_hyperparameters(xp):
    a, b = make_params()
    theta_a, theta_b = host(a.data), host(b.data)
    optimizer = SGD([{"params": [a], "lr": 0.2, "nesterov": True}, {"params": b}], lr=0.05, momentum=0.9)
    assert [g["lr"] for g in optimizer.param_groups] == [0.2, 0.05]
    assert [g["nesterov"] for g in optimizer.param_groups] == [True, False]
    assert optimizer.param_groups[1]["params"] == [b] and optimizer.param_groups[1]["momentum"] == 0.9
    trajectory = run(optimizer, [a, b], xp)
    expected_a = sgd_reference(theta_a, STEPS, lr=0.2, momentum=0.9, nesterov=True)
    expected_b = sgd_reference(theta_b, STEPS, lr=0.05, momentum=0.9)
    np.testing.assert_allclose(trajectory[-1][0], expected_a[-1], rtol=1e-12)
    np.testing.assert_allclose(trajectory[-1][1], expected_b[-1], rtol=1e-12)


def test_changing_a_group_lr_takes_effect_at_the_next_step(xp):
    (w,) = make_params(shapes=((3,),))
    optimizer = SGD([w], lr=0.1)
    w.grad = xp.ones(3, dtype=w.dtype)
    before = host(w.data)
    optimizer.param_groups[0]["lr"] = 0.5
    optimizer.step()
    np.testing.assert_allclose(host(w.data), before - 0.5, rtol=1e-15)


def test_add_param_group_and_generators_of_parameters(xp):
    a, b = make_params()
    optimizer = Adam((p for p in [a]), lr=0.01)  # a generator, like Module.parameters()
    optimizer.add_param_group({"params": b, "amsgrad": True})
    assert optimizer.param_groups[1]["params"] == [b]
    assert optimizer.param_groups[1]["amsgrad"] and optimizer.param_groups[1]["lr"] == 0.01
    run(optimizer, [a, b], xp, steps=2)
    assert "max_exp_avg_sq" in optimizer.state[b] and "max_exp_avg_sq" not in optimizer.state[a]
    with pytest.raises(ValueError, match="more than one parameter group"):
        optimizer.add_param_group({"params": [a]})


def test_add_param_group_does_not_modify_the_callers_dict():
    (w,) = make_params(shapes=((2,),))
    group = {"params": (w,)}
    SGD([group], lr=0.1)
    assert group == {"params": (w,)}


# Gradients, graph, skipping, zero_grad ----------------------------------------------------------------------
ALL_OPTIMIZERS = [
    (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "maximize": True}),
    (SGD, {"lr": 0.1}),
    (Adam, {"lr": 0.1, "weight_decay": 0.1, "amsgrad": True}),
    (Adam, {"lr": 0.1, "maximize": True, "betas": (0.2, 0.9)}),
    (AdamW, {"lr": 0.1, "amsgrad": True}),
    (Adam, {"lr": 0.1, "weight_decay": 0.1}),  # the fused multi-tensor path (adam_update.foreach)
    (AdamW, {"lr": 0.1}),  # fused too
]
OPTIMIZER_IDS = [f"{cls.__name__}-{','.join(kwargs)}" for cls, kwargs in ALL_OPTIMIZERS]


@pytest.mark.parametrize("optimizer_cls, kwargs", ALL_OPTIMIZERS, ids=OPTIMIZER_IDS)
def test_step_updates_data_in_place_and_never_touches_grad(optimizer_cls, kwargs, xp):
    params = make_params()
    optimizer = optimizer_cls(params, **kwargs)
    for _ in range(3):
        set_grads(params, xp)
        held = [(p.data, p.grad, host(p.grad)) for p in params]
        optimizer.step()
        for param, (data, grad, grad_values) in zip(params, held):
            assert param.data is data  # updated in place
            assert param.grad is grad
            np.testing.assert_array_equal(host(grad), grad_values)  # the gradient was only read
            assert param.is_leaf and param.requires_grad and param._fn is None  # no graph was built


@pytest.mark.parametrize("optimizer_cls, kwargs", ALL_OPTIMIZERS, ids=OPTIMIZER_IDS)
def test_a_model_state_dict_taken_before_a_step_follows_the_parameters(optimizer_cls, kwargs):
    """Module.state_dict() hands out the parameters' own arrays (as PyTorch): every update path must
    write into them, never rebind param.data (Adam's fused path once rebound it to views of a flat buffer)."""
    ta.manual_seed(0)
    model = ta.nn.Sequential(ta.nn.Linear(3, 4), ta.nn.ReLU(), ta.nn.Linear(4, 2))
    saved = model.state_dict()
    before = {name: host(array) for name, array in saved.items()}
    optimizer = optimizer_cls(model.parameters(), **kwargs)
    x = ta.tensor(np.random.default_rng(0).standard_normal((5, 3)))
    for _ in range(2):
        optimizer.zero_grad()
        (model(x) ** 2).sum().backward()
        optimizer.step()
    for name, param in model.named_parameters():
        assert saved[name] is param.data, name
        assert not np.array_equal(host(saved[name]), before[name]), name


@pytest.mark.parametrize("optimizer_cls, kwargs", ALL_OPTIMIZERS, ids=OPTIMIZER_IDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_preserved(optimizer_cls, kwargs, dtype, xp):
    params = make_params(dtype)
    optimizer = optimizer_cls(params, **kwargs)
    run(optimizer, params, xp, steps=3)
    for param in params:
        assert param.dtype == np.dtype(dtype) and param.grad.dtype == np.dtype(dtype)
        assert np.isfinite(host(param.data)).all()
        for name, value in optimizer.state.get(param, {}).items():
            if name == "step":
                assert type(value) is int and value == 3
            else:
                assert backend.backend_of(value) == param.backend and value.dtype == np.dtype(dtype), name


@pytest.mark.parametrize("optimizer_cls, kwargs", ALL_OPTIMIZERS, ids=OPTIMIZER_IDS)
def test_parameters_without_grad_are_skipped(optimizer_cls, kwargs, xp):
    a, b = make_params()
    optimizer = optimizer_cls([a, b], **kwargs)
    b_before = host(b.data)
    for _ in range(2):
        set_grads([a], xp)
        optimizer.step()
    np.testing.assert_array_equal(host(b.data), b_before)  # not even weight decay touches it
    assert b not in optimizer.state


def test_zero_grad_sets_none_by_default(xp):
    params = make_params()
    set_grads(params, xp)
    optimizer = SGD(params, lr=0.1)
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)
    optimizer.zero_grad()  # nothing to do: fine
    optimizer.step()  # every grad is None: nothing moves, no error


def test_zero_grad_without_set_to_none_gives_fresh_zeros(xp):
    params = make_params("float32")
    set_grads(params, xp)
    held = [(p.grad, host(p.grad)) for p in params]
    SGD(params, lr=0.1).zero_grad(set_to_none=False)
    for param, (old, old_values) in zip(params, held):
        assert param.grad is not old and param.grad.dtype == np.float32 and param.grad.shape == old.shape
        np.testing.assert_array_equal(host(param.grad), np.zeros(old.shape))
        np.testing.assert_array_equal(host(old), old_values)  # whoever holds the old array keeps it


def test_step_returns_the_closures_loss_and_trains_with_autograd():
    x = ta.tensor(np.linspace(-1, 1, 24).reshape(8, 3), dtype="float32")
    y = x @ ta.tensor([[1.0], [-2.0], [0.5]]) + 0.25
    w = ta.tensor(np.zeros((3, 1)), dtype="float32", requires_grad=True)
    b = ta.tensor(np.zeros(1), dtype="float32", requires_grad=True)
    optimizer = Adam([w, b], lr=0.05)

    def closure():
        optimizer.zero_grad()
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        return loss

    first = optimizer.step(closure).item()
    for _ in range(300):
        last = optimizer.step(closure).item()
    assert last < 1e-3 * first
    assert w.dtype == np.float32


def test_adamw_without_weight_decay_is_adam_and_with_it_differs(xp):
    p_adam, p_adamw, p_adam_l2, p_adamw_decay = (make_params()[0] for _ in range(4))
    run(Adam([p_adam], lr=0.1), [p_adam], xp)
    run(AdamW([p_adamw], lr=0.1, weight_decay=0), [p_adamw], xp)
    np.testing.assert_array_equal(host(p_adam.data), host(p_adamw.data))
    run(Adam([p_adam_l2], lr=0.1, weight_decay=0.5), [p_adam_l2], xp)
    run(AdamW([p_adamw_decay], lr=0.1, weight_decay=0.5), [p_adamw_decay], xp)
    assert not np.allclose(host(p_adam_l2.data), host(p_adamw_decay.data))


def test_defaults_follow_torch():
    (w,) = make_params(shapes=((2,),))
    assert SGD([w]).defaults == {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
                                 "nesterov": False, "maximize": False}
    adam = Adam([w]).defaults
    assert adam["lr"] == 1e-3 and adam["betas"] == (0.9, 0.999) and adam["eps"] == 1e-8
    assert adam["weight_decay"] == 0 and adam["amsgrad"] is False and adam["decoupled_weight_decay"] is False
    adamw = AdamW([w]).defaults
    assert adamw["weight_decay"] == 1e-2 and adamw["decoupled_weight_decay"] is True
    assert isinstance(AdamW([w]), Adam) and isinstance(SGD([w]), Optimizer)


# Validation -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "optimizer_cls, kwargs, message",
    [
        (SGD, {"lr": -0.1}, "lr"),
        (SGD, {"lr": float("nan")}, "lr"),
        (SGD, {"momentum": -0.5}, "momentum"),
        (SGD, {"weight_decay": -1.0}, "weight_decay"),
        (SGD, {"nesterov": True}, "Nesterov"),
        (SGD, {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "dampening"),
        (Adam, {"lr": -1e-3}, "lr"),
        (Adam, {"betas": (1.0, 0.999)}, r"betas\[0\]"),
        (Adam, {"betas": (-0.1, 0.999)}, r"betas\[0\]"),
        (Adam, {"betas": (0.9, 1.0)}, r"betas\[1\]"),
        (Adam, {"betas": (0.9,)}, "betas"),
        (Adam, {"eps": -1e-8}, "eps"),
        (Adam, {"weight_decay": -1e-2}, "weight_decay"),
        (AdamW, {"lr": -1.0}, "lr"),
        (AdamW, {"betas": (0.9, 1.5)}, r"betas\[1\]"),
        (AdamW, {"weight_decay": -0.1}, "weight_decay"),
    ],
)
def test_bad_hyperparameters_raise_value_errors_naming_them(optimizer_cls, kwargs, message):
    (w,) = make_params(shapes=((2,),))
    with pytest.raises(ValueError, match=message):
        optimizer_cls([w], **kwargs)


def test_bad_hyperparameter_in_a_group_names_the_group():
    a, b = make_params()
    with pytest.raises(ValueError, match="lr.*group 1"):
        SGD([{"params": [a]}, {"params": [b], "lr": -1.0}], lr=0.1)


def test_tensors_without_grad_are_accepted_and_left_alone():
    a, _ = make_params()
    frozen = ta.tensor([1.0, 2.0])  # as in PyTorch: accepted, and skipped since its grad stays None
    optimizer = SGD([a, frozen], lr=0.1)
    (a * 3.0).sum().backward()
    optimizer.step()
    assert frozen.numpy().tolist() == [1.0, 2.0]


def test_bad_params_are_refused():
    a, b = make_params()
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([a * 2.0], lr=0.1)
    with pytest.raises(TypeError, match="only optimize Tensors"):
        SGD([a, np.zeros(2)], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        SGD(a, lr=0.1)
    with pytest.raises(TypeError, match="set"):
        SGD({a, b}, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])
    with pytest.raises(ValueError, match="twice"):
        Adam([a, b, a])
    with pytest.raises(ValueError, match="more than one parameter group"):
        Adam([{"params": [a, b]}, {"params": [b]}])


# state_dict -------------------------------------------------------------------------------------------------
ROUND_TRIP = [
    (SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (SGD, {"lr": 0.05}),
    (Adam, {"lr": 0.05, "amsgrad": True, "weight_decay": 0.01}),
    (AdamW, {"lr": 0.05, "betas": (0.8, 0.99)}),
]


def grouped(optimizer_cls, kwargs, params, first_lr):
    return optimizer_cls([{"params": params[:1], "lr": first_lr}, {"params": params[1:]}], **kwargs)


def arrays_of(optimizer, params):
    values = [host(p.data) for p in params]
    for param in params:
        for name, value in sorted(optimizer.state.get(param, {}).items()):
            values.append(value if name == "step" else host(value))
    return values


def assert_bitwise_equal(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        if isinstance(a, int):
            assert a == b
        else:
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("optimizer_cls, kwargs", ROUND_TRIP, ids=[c.__name__ for c, _ in ROUND_TRIP])
@pytest.mark.parametrize("through_host", [False, True], ids=["arrays", "host-numpy"])
def test_resumed_optimizer_continues_bitwise(optimizer_cls, kwargs, through_host, xp):
    params = make_params("float32")
    optimizer = grouped(optimizer_cls, kwargs, params, first_lr=0.1)
    run(optimizer, params, xp, steps=5)
    saved = optimizer.state_dict()
    saved_params = [host(p.data) for p in params]
    run(optimizer, params, xp, steps=5)

    if through_host:  # as if written with numpy.savez and read back: NumPy arrays, NumPy integers
        saved = {
            "state": {i: {k: np.int64(v) if k == "step" else host(v) for k, v in entry.items()}
                      for i, entry in saved["state"].items()},
            "param_groups": saved["param_groups"],
        }
    resumed_params = [ta.tensor(values, requires_grad=True) for values in saved_params]
    resumed = grouped(optimizer_cls, {**kwargs, "lr": 0.7}, resumed_params, first_lr=0.3)  # hyperparameters
    resumed.load_state_dict(saved)  # come from the dict
    assert [g["lr"] for g in resumed.param_groups] == [0.1, kwargs["lr"]]
    run(resumed, resumed_params, xp, steps=5)
    assert_bitwise_equal(arrays_of(resumed, resumed_params), arrays_of(optimizer, params))


def test_state_dict_layout_and_copies(xp):
    params = make_params("float32")
    optimizer = grouped(Adam, {"lr": 0.01, "amsgrad": True}, params, first_lr=0.1)
    run(optimizer, params, xp, steps=2)
    saved = optimizer.state_dict()
    assert set(saved) == {"state", "param_groups"}
    assert [g["params"] for g in saved["param_groups"]] == [[0], [1]]
    assert saved["param_groups"][0]["lr"] == 0.1 and saved["param_groups"][1]["betas"] == (0.9, 0.999)
    assert list(saved["state"]) == [0, 1]
    assert set(saved["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert saved["state"][1]["step"] == 2
    exp_avg = saved["state"][0]["exp_avg"]
    assert backend.backend_of(exp_avg) == params[0].backend and exp_avg.dtype == np.float32
    assert exp_avg is not optimizer.state[params[0]]["exp_avg"]  # a copy: training on leaves it as it was
    snapshot = host(exp_avg)
    run(optimizer, params, xp, steps=1)
    np.testing.assert_array_equal(host(exp_avg), snapshot)
    # One dict loads into two optimizers without them sharing arrays.
    others = [make_params("float32") for _ in range(2)]
    loaded = [grouped(Adam, {}, ps, first_lr=0.5) for ps in others]
    for opt in loaded:
        opt.load_state_dict(saved)
    first, second = (opt.state[ps[0]]["exp_avg"] for opt, ps in zip(loaded, others))
    assert first is not second and first is not exp_avg


def test_load_state_dict_casts_state_to_the_parameter_dtype(xp):
    source = make_params("float64")
    optimizer = SGD(source, lr=0.1, momentum=0.9)
    run(optimizer, source, xp, steps=2)
    target = make_params("float32")
    resumed = SGD(target, lr=0.1, momentum=0.9)
    resumed.load_state_dict(optimizer.state_dict())
    assert all(resumed.state[p]["momentum_buffer"].dtype == np.float32 for p in target)


def test_load_state_dict_validates_before_changing_anything(xp):
    params = make_params()
    optimizer = grouped(SGD, {"lr": 0.1, "momentum": 0.9}, params, first_lr=0.2)
    run(optimizer, params, xp, steps=2)
    saved = optimizer.state_dict()

    (single,) = make_params(shapes=((2, 3),))
    with pytest.raises(ValueError, match="2 parameter groups, but this SGD has 1"):
        SGD([single], lr=0.1).load_state_dict(saved)

    a, b, c = make_params(shapes=((2, 3), (4,), (4,)))
    with pytest.raises(ValueError, match="group 1 of the loaded state dict has 1 parameters.* has 2"):
        SGD([{"params": [a]}, {"params": [b, c]}]).load_state_dict(saved)

    wrong_shapes = make_params(shapes=((3, 2), (4,)))
    target = grouped(SGD, {"lr": 0.1, "momentum": 0.9}, wrong_shapes, first_lr=0.2)
    with pytest.raises(ValueError, match=r"shape \(2, 3\), but the parameter has shape \(3, 2\)"):
        target.load_state_dict(saved)
    assert target.state == {} and target.param_groups[0]["lr"] == 0.2  # nothing changed

    other = make_params()
    with pytest.raises(ValueError, match="hyperparameters.*another kind of optimizer"):
        grouped(Adam, {}, other, first_lr=0.1).load_state_dict(saved)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        grouped(SGD, {}, other, first_lr=0.1).load_state_dict({"state": {}})
    with pytest.raises(ValueError, match="parameter 7"):
        grouped(SGD, {}, other, first_lr=0.1).load_state_dict({**saved, "state": {7: {}}})
    bad_lr = {**saved, "param_groups": [{**saved["param_groups"][0], "lr": -1.0}, saved["param_groups"][1]]}
    with pytest.raises(ValueError, match="lr.*loaded parameter group 0"):
        grouped(SGD, {}, other, first_lr=0.1).load_state_dict(bad_lr)


def test_adamw_stays_decoupled_after_loading_an_adam_state(xp):
    params = make_params()
    adam = Adam(params, lr=0.1, weight_decay=0.1)
    run(adam, params, xp, steps=1)
    adamw = AdamW(make_params(), lr=0.1)
    adamw.load_state_dict(adam.state_dict())
    assert adamw.param_groups[0]["decoupled_weight_decay"] is True


# Agreement with torch ---------------------------------------------------------------------------------------
TORCH_CONFIGS = [
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "dampening": 0.2, "weight_decay": 1e-2}),
    ("SGD", {"lr": 0.05, "weight_decay": 1e-2}),
    ("Adam", {"lr": 1e-2}),
    ("Adam", {"lr": 1e-2, "amsgrad": True}),
    ("Adam", {"lr": 1e-2, "weight_decay": 1e-2}),
    ("Adam", {"lr": 1e-2, "weight_decay": 1e-2, "amsgrad": True, "betas": (0.8, 0.99), "eps": 1e-6}),
    # β₁ < 0.5 takes lerp's other branch. (With betas (0.3, 0.9) this problem is chaotic: a 1e-15 change of
    # one initial value grows to 1e-4 by step 90, in either library alone; (0.3, 0.999) is well-conditioned.)
    ("Adam", {"lr": 1e-2, "betas": (0.3, 0.999), "maximize": True}),
    ("AdamW", {"lr": 1e-2}),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True}),
]


def mlp_gradients(params, inputs, targets):
    """Gradients of mean((tanh(X·W1 + b1)·W2 + b2 − Y)²), by hand in float64 NumPy."""
    w1, b1, w2, b2 = params
    hidden = np.tanh(inputs @ w1 + b1)
    grad_out = 2.0 * (hidden @ w2 + b2 - targets) / targets.size
    grad_hidden = (grad_out @ w2.T) * (1.0 - hidden**2)
    return [inputs.T @ grad_hidden, grad_hidden.sum(0), hidden.T @ grad_out, grad_out.sum(0)]


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs", TORCH_CONFIGS, ids=[f"{n}-{','.join(k)}" for n, k in TORCH_CONFIGS])
def test_trajectories_agree_with_torch(name, kwargs, xp):
    import torch

    rng = np.random.default_rng(1)
    inputs, targets = rng.standard_normal((16, 3)), rng.standard_normal((16, 2))
    initial = [rng.standard_normal(shape) for shape in [(3, 5), (5,), (5, 2), (2,)]]
    sign = -1.0 if kwargs.get("maximize") else 1.0  # maximize the negated loss: the same descent

    ours = [ta.tensor(v, requires_grad=True) for v in initial]
    theirs = [torch.tensor(v, requires_grad=True) for v in initial]
    assert ours[0].dtype == np.float64

    def groups(params):
        return [{"params": params[:2], "lr": 2 * kwargs["lr"]}, {"params": params[2:]}]

    our_optimizer = getattr(optim, name)(groups(ours), **kwargs)
    their_optimizer = getattr(torch.optim, name)(groups(theirs), foreach=False, **kwargs)

    for step in range(100):
        for param, grad in zip(ours, mlp_gradients([host(p.data) for p in ours], inputs, targets)):
            param.grad = xp.asarray(sign * grad)
        with torch.no_grad():
            for param, grad in zip(theirs, mlp_gradients([p.numpy() for p in theirs], inputs, targets)):
                param.grad = torch.from_numpy(sign * grad)
        our_optimizer.step()
        their_optimizer.step()
        for index, (mine, reference) in enumerate(zip(ours, theirs)):
            np.testing.assert_allclose(host(mine.data), reference.detach().numpy(), rtol=1e-7, atol=0,
                                       err_msg=f"parameter {index} after step {step + 1}")

    # Same state_dict layout: the same state names per parameter index, the same index lists per group, and
    # our hyperparameter names are a subset of torch's (torch adds foreach, fused, differentiable, ...).
    mine, theirs = our_optimizer.state_dict(), their_optimizer.state_dict()
    assert {i: set(e) for i, e in mine["state"].items()} == {i: set(e) for i, e in theirs["state"].items()}
    assert [g["params"] for g in mine["param_groups"]] == [g["params"] for g in theirs["param_groups"]]
    assert set(mine["param_groups"][0]) <= set(theirs["param_groups"][0])
