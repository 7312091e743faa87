"""Every fused kernel's CUDA body compiled as CuPy compiles it on a GPU, on a machine without one.

On its first call, ``cupy.ElementwiseKernel`` writes the kernel's source from the arguments' dtypes and
layouts (``cupy._core._kernel._get_elementwise_kernel_code``) and compiles it with NVRTC
(``cupy._core.core.compile_with_cache``: CuPy's headers, include paths and options, ``-ftz=true``, and
``-arch=sm_XX`` for the device). These tests run that same code of CuPy's for every kernel of
``tinyae.kernels.all_kernels()``, in float32 and float64, in each layout CuPy writes different code for, for
the GPUs of today. Only what needs a device is stood in for: the device's compute capability is given, and
the compiled binary is kept instead of loaded onto the device.

Needs the ``cuda-compile`` extra (cupy-cuda13x and NVIDIA's NVRTC and CUDA-header wheels; no GPU, no driver);
skipped where CuPy is not installed. Where CuPy is installed but can't compile, they fail: so would tinyae's
cupy backend.
"""

import io

import numpy as np
import pytest

from tinyae import kernels
from tests.conftest import BACKEND

try:
    import cupy
    from cupy._core import _carray, _kernel, _scalar, core
    from cupy.cuda import compiler, function
    MISSING_CUPY = None
except ImportError as error:
    MISSING_CUPY = f"needs CuPy: pip install -e \".[dev,cuda-compile]\" (on Linux or Windows): {error}"

pytestmark = pytest.mark.skipif(MISSING_CUPY is not None, reason=str(MISSING_CUPY))

KERNELS = kernels.all_kernels()
DTYPES = (np.float32, np.float64)
GPUS = {"T4": 75, "A100": 80, "RTX 3090": 86, "L4": 89, "H100": 90, "B200": 100, "RTX 5090": 120}
LAYOUTS = {  # the argument layouts CuPy writes different code for, once it has merged contiguous dimensions
    "contiguous": "every array C-contiguous: one dimension (CArray<T, 1, 1, 1>)",
    "strided": "the first input a transposed view, the others broadcast: two dimensions (CArray<T, 2, 0, 1>)",
    "scalars": "the first input an array, the others Python scalars (passed by value, cast to the parameter)",
    "huge": "every array C-contiguous, past 2**31 elements: 64-bit indices (CArray<T, 1, 1, 0>)",
}
NDARRAY, INDEXER, SCALAR = 1, 2, 3  # CuPy's _ArgKind


def compiled_with_nvrtc(test):
    """Marks a test that compiles: ``cuda_compile``, run once (in the numpy run) as it needs no backend."""
    once = pytest.mark.skipif(BACKEND != "numpy", reason="backend-independent: checked in the numpy run")
    return pytest.mark.cuda_compile(once(test))


def elementwise_kernel(kernel: kernels.Kernel, operation: str | None = None):
    """The ``cupy.ElementwiseKernel`` that ``Kernel.__call__`` builds on its first GPU call (with another
    body where ``operation`` is given)."""
    if operation is None:
        return kernel.cupy_kernel(cupy)
    return cupy.ElementwiseKernel(kernel.in_params, kernel.out_params, operation, kernel.name,
                                  preamble=kernel.preamble)


def cupy_source(kernel: kernels.Kernel, dtype, layout: str, operation: str | None = None):
    """The source and NVRTC options CuPy gives ``kernel`` called on ``dtype`` arrays laid out as ``layout``
    says (LAYOUTS): what ElementwiseKernel.__call__ derives from the arguments, derived here without them.
    Returns (source, options)."""
    elementwise = elementwise_kernel(kernel, operation)

    def declared(type_name):  # a one-letter type is a placeholder, which the arrays' dtype decides
        return dtype if len(type_name) == 1 else np.dtype(type_name).type

    scalars = layout == "scalars"
    in_types = tuple(None if scalars and index > 0 else declared(type_name)
                     for index, (type_name, _) in enumerate(kernel.inputs))
    out_types = tuple(declared(type_name) for type_name, _ in kernel.outputs) if kernel.in_place else ()
    in_types, out_types, type_map = elementwise._decide_params_type(in_types, out_types)
    ndim, index_32_bits = (2 if layout == "strided" else 1), layout != "huge"

    def array(array_dtype, contiguous=layout != "strided"):
        return _kernel._ArgInfo(NDARRAY, cupy.ndarray, array_dtype, ndim, contiguous, index_32_bits)

    def scalar(scalar_dtype):
        return _kernel._ArgInfo(SCALAR, _scalar.CScalar, scalar_dtype, 0, True, True)

    arguments = [array(in_types[0])] + [scalar(t) if scalars else array(t) for t in in_types[1:]]
    arguments += [array(out_type, contiguous=True) for out_type in out_types]  # outputs: fresh, C-ordered
    arguments.append(_kernel._ArgInfo(INDEXER, _carray.Indexer, None, ndim, True, index_32_bits))
    source = _kernel._get_elementwise_kernel_code(
        tuple(arguments), type_map, elementwise.params, elementwise.operation, elementwise.name,
        elementwise.preamble, **elementwise.kwargs)
    return source, elementwise.kwargs.get("options", ())


@pytest.fixture(scope="module")
def compile_as_cupy():
    """``compile(source, options, gpu, ptx=False)`` → (binary, NVRTC's log): ``source`` compiled for the GPU
    named ``gpu`` (GPUS) as CuPy compiles an ElementwiseKernel's source: a cubin, or PTX as CuPy makes it
    where CUPY_COMPILE_WITH_PTX is set (``ptx=True``). Raises CuPy's CompileException where NVRTC refuses."""
    try:
        compiler._get_nvrtc_version()
        core.assemble_cupy_compiler_options(())  # finds the CUDA headers
    except Exception as error:
        pytest.fail(f"CuPy is installed but can't compile kernels: install the cuda-compile extra, or the "
                    f"CUDA toolkit ({type(error).__name__}: {error})")

    class KeptModule(function.Module):
        """A compiled module kept as its binary instead of loaded onto a device."""

        binary = b""

        def load(self, binary):
            self.binary = binary

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CUPY_CACHE_IN_MEMORY", "1")  # nothing cached in ~/.cupy
        # memoized per device, which it looks up first: the same function without the lookup
        patch.setattr(compiler, "_get_arch_for_options_for_nvrtc",
                      compiler._get_arch_for_options_for_nvrtc.__wrapped__)
        patch.setattr(function, "Module", KeptModule)

        def compile(source: str, options: tuple, gpu: str, ptx: bool = False) -> tuple[bytes, str]:
            # the architecture compiler._get_arch() picks for the device: its own, at most NVRTC's newest
            arch = min(str(GPUS[gpu]), compiler._get_max_compute_capability(), key=int)
            log = io.StringIO()
            with pytest.MonkeyPatch.context() as ptx_patch:
                ptx_patch.setattr(compiler, "_use_ptx", ptx)
                module = core.compile_with_cache(source, options, arch, log_stream=log)
            return module.binary, log.getvalue()

        yield compile


def f64_lines(ptx: bytes) -> list[str]:
    """The PTX lines that declare, convert to or compute in double precision."""
    return [line.strip() for line in ptx.decode().splitlines() if ".f64" in line and "//" not in line]


@compiled_with_nvrtc
@pytest.mark.parametrize("gpu", GPUS)
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_every_body_compiles_for_every_gpu(name, gpu, compile_as_cupy):
    """Contiguous arrays, float32 and float64: a cubin for the GPU's architecture, and not one warning."""
    for dtype in DTYPES:
        source, options = cupy_source(KERNELS[name], dtype, "contiguous")
        binary, log = compile_as_cupy(source, options, gpu)
        assert binary.startswith(b"\x7fELF"), f"{name} ({np.dtype(dtype)}) for the {gpu}: no cubin"
        assert log.strip() == "", f"{name} ({np.dtype(dtype)}) for the {gpu}: NVRTC warned\n{log}\n{source}"


@compiled_with_nvrtc
@pytest.mark.parametrize("layout", [layout for layout in LAYOUTS if layout != "contiguous"])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_every_body_compiles_in_every_layout(name, layout, compile_as_cupy):
    """The code CuPy writes for strided and broadcast arrays, scalars and 64-bit indices (for an H100)."""
    for dtype in DTYPES:
        source, options = cupy_source(KERNELS[name], dtype, layout)
        binary, log = compile_as_cupy(source, options, "H100")
        assert binary.startswith(b"\x7fELF"), f"{name} ({np.dtype(dtype)}, {layout}): no cubin"
        assert log.strip() == "", f"{name} ({np.dtype(dtype)}, {layout}): NVRTC warned\n{log}\n{source}"


@compiled_with_nvrtc
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_float32_bodies_compute_in_float32(name, compile_as_cupy):
    """No double in a float32 kernel's PTX: a bare 0.5 (a double in C) would make float32 arithmetic run in
    FP64, at a fraction of the speed on most GPUs; (T)0.5 keeps it float."""
    for layout in ("contiguous", "scalars"):  # (the others differ in integer indexing only)
        source, options = cupy_source(KERNELS[name], np.float32, layout)
        ptx, _ = compile_as_cupy(source, options, "H100", ptx=True)
        assert f64_lines(ptx) == [], f"{name} ({layout}) computes in double:\n{source}"


@compiled_with_nvrtc
def test_a_double_literal_in_a_float32_body_shows_in_its_ptx(compile_as_cupy):
    kernel = KERNELS["gaussian_kl_terms"]
    assert "(T)0.5 * (mu" in kernel.operation
    operation = kernel.operation.replace("(T)0.5 * (mu", "0.5 * (mu")
    source, options = cupy_source(kernel, np.float32, "contiguous", operation)
    ptx, _ = compile_as_cupy(source, options, "H100", ptx=True)
    assert f64_lines(ptx), ptx.decode()


BROKEN_BODIES = {  # relu_backward's body, broken as CuPy's compiler would refuse it, and what NVRTC says
    "syntax error": ("grad_x = out > 0 ? grad_out : (T)0 +", "expected an expression"),
    "writes an input (CuPy binds inputs const)": ("grad_out = 0; grad_x = out", "modifiable lvalue"),
    "undefined name": ("grad_x = out > 0 ? grad_out : zero", "identifier \"zero\" is undefined"),
    "calls an undefined function": ("grad_x = relu(out)", "identifier \"relu\" is undefined"),
}


@compiled_with_nvrtc
@pytest.mark.parametrize("body", BROKEN_BODIES)
def test_a_broken_body_is_refused(body, compile_as_cupy):
    operation, complaint = BROKEN_BODIES[body]
    source, options = cupy_source(KERNELS["relu_backward"], np.float32, "contiguous", operation)
    with pytest.raises(compiler.CompileException, match=complaint):
        compile_as_cupy(source, options, "H100")


@pytest.mark.gpu
@pytest.mark.parametrize("layout", [layout for layout in LAYOUTS if layout != "huge"])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_the_sources_are_those_cupy_writes_on_a_gpu(name, layout):
    """On a GPU: called on real arguments laid out as ``layout`` says, CuPy writes cupy_source's source."""
    kernel, rng = KERNELS[name], np.random.default_rng(0)
    for dtype in DTYPES:
        arguments = []
        for index, (type_name, _) in enumerate(kernel.inputs):
            argument_dtype = np.dtype(dtype if len(type_name) == 1 else type_name)
            if layout == "scalars" and index > 0:
                arguments.append(argument_dtype.type(1).item())  # a Python float or bool
            elif layout == "strided":  # the first input transposed, the others broadcast rows
                values = cupy.asarray(rng.standard_normal((5, 4) if index == 0 else (5,)), argument_dtype)
                arguments.append(values.T if index == 0 else cupy.broadcast_to(values, (4, 5)))
            else:
                arguments.append(cupy.asarray(rng.standard_normal((4, 5)), argument_dtype))
        if kernel.in_place:
            arguments += [cupy.zeros((4, 5), dtype) for _ in kernel.outputs]
        elementwise = elementwise_kernel(kernel)  # a fresh one: it keeps the first source of each dtype
        elementwise(*arguments)
        assert elementwise.cached_code == cupy_source(kernel, dtype, layout)[0], f"{name} ({np.dtype(dtype)})"
