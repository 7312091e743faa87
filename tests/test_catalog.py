"""The gradient-check catalogue (``tinyae gradcheck``): it covers every op, layer and loss, passes on the
backend under test, reports wrong gradients and errors as failures, filters with --only, prints its table."""

import importlib
import inspect
import math
import pkgutil

import numpy as np
import pytest

import tinyae as ta
import tinyae.functional as F
from tests.conftest import BACKEND
from tinyae import models, nn, ops
from tinyae.autograd import Function
from tinyae.kernels import all_kernels
from tinyae.ops import loss, shape
from tinyae.tensor import ToBackend
from tinyae.testing import catalog, catalog_kernels, catalog_models
from tests.test_gradcheck import WrongSquare  # a negative control; test-local, so uncatalogued


def _draw_wrong_square(rng: np.random.Generator) -> catalog.Case:
    x = ta.tensor(rng.uniform(1.0, 2.0, 3), requires_grad=True)
    return catalog.Case("x (3,)", WrongSquare.apply, [x])


def _draw_broken(rng: np.random.Generator) -> catalog.Case:
    return catalog.Case("x (2,)", lambda x: x * (1 / 0), [ta.tensor(np.ones(2), requires_grad=True)])


def _subclasses(cls: type) -> set[type]:
    found, pending = set(), [cls]
    while pending:
        for subclass in pending.pop().__subclasses__():
            if subclass not in found:
                found.add(subclass)
                pending.append(subclass)
    return found


def _import_submodules(package) -> None:
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


def differentiable_things() -> dict[str, object]:
    """Qualified name → each op (a Function subclass defined in tinyae, e.g. in tinyae.ops or tinyae.tensor),
    each public nn layer, and each public function of tinyae.functional."""
    _import_submodules(ops)
    _import_submodules(nn)
    importlib.import_module("tinyae.tensor")
    things = {}
    for cls in _subclasses(Function):
        if cls.__module__.startswith("tinyae."):  # not test-local ones such as WrongSquare
            things[f"{cls.__module__}.{cls.__qualname__}"] = cls
    for cls in _subclasses(nn.Module):
        if cls.__module__.startswith("tinyae.nn.") and not cls.__name__.startswith("_"):
            things[f"{cls.__module__}.{cls.__qualname__}"] = cls
    for name, function in inspect.getmembers(F, inspect.isfunction):
        if not name.startswith("_"):
            things[f"tinyae.functional.{name}"] = function
    return things


def _covered() -> set:
    return {thing for entry in catalog.CATALOGUE for thing in entry.covers}


# Coverage ---------------------------------------------------------------------------------------------------

def test_every_op_layer_and_loss_has_a_catalogue_entry():
    covered = _covered()
    missing = sorted(name for name, thing in differentiable_things().items() if thing not in covered)
    assert not missing, f"no entry in tinyae/testing/catalog.py covers: {', '.join(missing)}"


def test_discovery_finds_ops_layers_and_functions_but_not_test_local_ops():
    things = list(differentiable_things().values())
    for expected in (ops.arithmetic.Add, ops.conv.ConvTranspose2d, ops.loss.KLSparsity, ToBackend,
                     nn.Sequential, nn.Conv2d, F.mse_loss, F.reparameterize):
        assert expected in things
    assert WrongSquare not in things
    assert nn.Module not in things


def test_entries_have_unique_names_and_cover_only_real_things():
    names = [entry.name for entry in catalog.CATALOGUE]
    assert len(names) == len(set(names))
    things = [*differentiable_things().values(), *models.MODELS.values(), *all_kernels().values()]
    assert all(entry.covers for entry in catalog.CATALOGUE)
    assert all(any(thing is known for known in things) for thing in _covered())


def test_every_tutorial_model_and_every_kernel_has_an_entry():
    covered = _covered()
    assert [name for name, cls in models.MODELS.items() if cls not in covered] == []
    assert [name for name, kernel in all_kernels().items() if kernel not in covered] == []
    names = [entry.name for entry in catalog.CATALOGUE]
    for expected in ("model.ae", "model.sparse-ae", "model.denoising-ae", "model.vae", "model.beta-vae",
                     "model.conv-ae", "model.conv-vae", "model.cvae", "model.conv-cvae",
                     *(f"kernel.{name}" for name in all_kernels())):
        assert expected in names


# The whole catalogue ----------------------------------------------------------------------------------------

REPEATS = catalog_models.MODEL_DRAWS  # draws per entry here (the command's default, 100, takes too long)


@pytest.fixture(scope="module")
def full_run() -> list[catalog.Result]:
    return catalog.run(BACKEND, repeats=REPEATS)


def test_whole_catalogue_passes_on_the_backend_under_test(full_run):
    failures = [f"{row.name} ({row.settings}): {row.message}" for row in full_run if not row.passed]
    assert not failures, "\n".join(failures)
    assert len(full_run) == sum(min(REPEATS, entry.max_draws or REPEATS) for entry in catalog.CATALOGUE)
    for row in full_run:
        assert 0 <= row.max_abs_error <= catalog.ATOL and 0 <= row.max_rel_error <= catalog.RTOL


def test_run_restores_the_backend_and_default_dtype():
    catalog.run(BACKEND, only="nn.Linear", repeats=1)
    assert ta.get_backend() == BACKEND and ta.get_default_dtype() == np.float32


# Failures are reported --------------------------------------------------------------------------------------

def test_a_wrong_backward_is_a_failed_row_and_main_returns_1(monkeypatch, capsys):
    entry = catalog.Entry("wrong_square", (WrongSquare,), _draw_wrong_square)
    monkeypatch.setattr(catalog, "CATALOGUE", [*catalog.CATALOGUE, entry])
    [row] = catalog.run(BACKEND, only="wrong_square", repeats=1)
    assert not row.passed and row.settings == "x (3,)"
    assert "gradcheck: input 0" in row.message and "analytic" in row.message
    assert row.max_abs_error > catalog.ATOL and math.isclose(row.max_rel_error, 0.5, rel_tol=1e-6)  # x vs 2x
    assert catalog.main(["--backend", BACKEND, "--only", "WRONG", "--repeats", "3"]) == 1
    out = capsys.readouterr().out
    assert "| FAIL" in out and "- wrong_square (x (3,)): gradcheck: input 0" in out
    assert out.rstrip().endswith("3 checks, 0 passed, 3 failed")


def test_an_exception_is_a_failed_row_with_its_message(monkeypatch):
    monkeypatch.setattr(catalog, "CATALOGUE", [catalog.Entry("broken", (), _draw_broken)])
    [row] = catalog.run(BACKEND, repeats=1)
    assert not row.passed and row.settings == "x (2,)"
    assert row.message.startswith("ZeroDivisionError") and row.max_abs_error is None


# --only and --seed ------------------------------------------------------------------------------------------

def test_only_selects_by_case_insensitive_substring_and_repeats_the_full_runs_rows(full_run):
    rows = catalog.run(BACKEND, only="CONV", repeats=2)
    expected = [entry.name for entry in catalog.CATALOGUE if "conv" in entry.name.lower()]
    assert expected == ["conv2d", "conv_transpose2d", "nn.Conv2d", "nn.ConvTranspose2d", "model.conv-ae",
                        "model.conv-vae", "model.conv-cvae"]
    assert sorted({row.name for row in rows}) == sorted(expected)
    first_two = [settings for name in expected
                 for settings in [row.settings for row in full_run if row.name == name][:2]]
    assert [row.settings for row in rows] == first_two


def test_the_seed_changes_the_draws():
    settings = [[row.settings for row in catalog.run(BACKEND, only="matmul", seed=seed, repeats=REPEATS)]
                for seed in (0, 1)]
    assert settings[0] != settings[1]


def test_only_matching_nothing_is_an_error_listing_the_checks(capsys):
    with pytest.raises(ValueError, match="no gradient check matches 'nonesuch'; the checks are: add, sub, "):
        catalog.run(BACKEND, only="nonesuch")
    assert catalog.main(["--only", "nonesuch"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("tinyae gradcheck: error:") and "nn.Sequential" in error


def test_main_prints_the_table_and_returns_0_when_all_pass(capsys):
    assert catalog.main(["--backend", BACKEND, "--only", "softplus", "--seed", "3", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "| nn.Softplus" in out and "| kernel.softplus_backward" in out  # 3 entries, 2 draws each
    assert out.rstrip().endswith("6 checks, 6 passed, 0 failed")


def test_bad_options_are_usage_errors():
    for argv in (["--seed", "-1"], ["--repeats", "0"], ["--backend", "torch"]):
        with pytest.raises(SystemExit) as exit_info:
            catalog.main(argv)
        assert exit_info.value.code == 2


# The table --------------------------------------------------------------------------------------------------

def test_table_has_the_columns_a_row_per_check_the_failures_and_the_summary():
    rows = [
        catalog.Result("add", "a (2,), b ()", 1.5e-10, 3e-9, True),
        catalog.Result("div", "a (), b ()", None, None, False, "ValueError: boom"),
    ]
    lines = catalog.format_table(rows).splitlines()
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[:4]]
    assert cells[0] == ["check", "shapes and settings", "max abs error", "max rel error", "result"]
    assert set(lines[1]) == {"|", "-", ":"}
    assert cells[2] == ["add", "a (2,), b ()", "1.5e-10", "3.0e-09", "pass"]
    assert cells[3] == ["div", "a (), b ()", "n/a", "n/a", "FAIL"]
    assert "- div (a (), b ()): ValueError: boom" in lines
    assert lines[-1] == "2 checks, 1 passed, 1 failed"
    assert catalog.format_table(rows[:1]).splitlines()[-1] == "1 check, 1 passed, 0 failed"


# Layers are checked in their parameters ---------------------------------------------------------------------

def test_layers_compute_with_the_given_tensors_and_keep_their_parameters():
    layer = nn.Linear(2, 3)
    weight, bias = layer.weight, layer.bias
    x, new_weight, new_bias = (ta.tensor(np.ones(shape)) for shape in ((4, 2), (3, 2), (3,)))
    out = catalog._call_with_parameters(layer, {"weight": new_weight, "bias": new_bias}, x)
    np.testing.assert_array_equal(out.numpy(), np.full((4, 3), 3.0))
    assert layer.weight is weight and layer.bias is bias
    assert dict(layer.named_parameters()) == {"weight": weight, "bias": bias}


# The models and the compiled kernels ------------------------------------------------------------------------

def test_the_output_names_each_model_and_kernel(capsys):
    assert catalog.main(["--backend", BACKEND, "--only", "model.", "--repeats", "1"]) == 0
    assert catalog.main(["--backend", BACKEND, "--only", "kernel.", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for name in [*models.MODELS, "beta-vae"]:
        assert f"| model.{name} " in out
    for name in all_kernels():
        assert f"| kernel.{name} " in out
    if BACKEND == "numpy" and catalog_kernels.twin_reason(loss.bce_with_logits) is None:
        assert "| kernel.bce_with_logits" in out and "C loop: x (" in out


def _halved_logvar_gradient(self, grad_out):
    grad_mu, grad_logvar = original_kl_backward(self, grad_out)
    return grad_mu, None if grad_logvar is None else grad_logvar * 0.5


original_kl_backward = loss.GaussianKL.backward


@pytest.mark.parametrize("model", ["model.vae", "model.beta-vae", "model.conv-vae", "model.cvae",
                                   "model.conv-cvae"])
def test_a_wrong_gradient_in_a_models_loss_fails_the_command(model, monkeypatch, capsys):
    monkeypatch.setattr(loss.GaussianKL, "backward", _halved_logvar_gradient)
    assert catalog.main(["--backend", BACKEND, "--only", model, "--repeats", "1"]) == 1
    out = capsys.readouterr().out
    assert f"- {model} (x (" in out and "gradcheck: input" in out and "analytic" in out
    assert out.rstrip().endswith("1 check, 0 passed, 1 failed")


def test_the_models_are_checked_in_their_settings(full_run):
    rows = [row for row in full_run if row.name.startswith("model.")]
    text = "\n".join(row.settings for row in rows)
    for setting in ("reconstruction='mse'", "penalty='l1'", "penalty='kl'", "noise='gaussian'",
                    "noise='mask'",
                    "likelihood='gaussian'", "likelihood='bernoulli'", "decoder='transpose'",
                    "decoder='upsample'", "directional"):
        assert setting in text
    beta_vae = [row.settings for row in rows if row.name == "model.beta-vae"]
    assert all("beta=1.0," not in settings and "kl_weight=1.0," not in settings for settings in beta_vae)


@pytest.mark.skipif(BACKEND != "numpy", reason="the C loops run on NumPy arrays only")
def test_a_kernel_row_fails_when_its_compiled_loop_did_not_run(monkeypatch):
    kernel = catalog_kernels.activation.sigmoid_backward
    if catalog_kernels.twin_reason(kernel) is not None:
        pytest.skip(f"no compiled loop here: {catalog_kernels.twin_reason(kernel)}")
    [row] = catalog.run(BACKEND, only="kernel.sigmoid_backward", repeats=1)
    assert row.passed and row.settings.startswith("C loop: x (")
    monkeypatch.setattr(kernel.cpu_loop, "_prepared_for", lambda *args: None)  # every call takes the twin
    [row] = catalog.run(BACKEND, only="kernel.sigmoid_backward", repeats=1)
    assert not row.passed and "compiled C loop of kernel sigmoid_backward never ran" in row.message


def _transpose_forward_with_a_wrong_inverse(self, x, axes=None):
    """Transpose.forward, keeping the permutation itself as its inverse for 3 axes: wrong only for the two
    3-cycles (the other permutations of 3 axes are their own inverses)."""
    out = original_transpose_forward(self, x, axes)
    if x.ndim == 3:
        self.inverse = tuple(int(axis) % 3 for axis in (axes if axes is not None else (2, 1, 0)))
    return out


original_transpose_forward = shape.Transpose.forward


def test_the_default_repeats_catch_a_transpose_wrong_only_for_3_cycles(monkeypatch):
    monkeypatch.setattr(shape.Transpose, "forward", _transpose_forward_with_a_wrong_inverse)
    transpose = [entry for entry in catalog.CATALOGUE if entry.name == "transpose"]
    monkeypatch.setattr(catalog, "CATALOGUE", transpose)
    caught_by_4 = 0
    for seed in range(20):
        rows = [row.passed for row in catalog.run(BACKEND, seed=seed)]
        assert len(rows) == catalog.DEFAULT_REPEATS and not all(rows), f"seed {seed}: not caught"
        caught_by_4 += not all(rows[:4])
    assert caught_by_4 < 15  # 4 draws, the old default, miss it at most seeds (72% in theory)
