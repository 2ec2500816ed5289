"""Building blocks for SIMD-friendly Numba kernels: a vectorisable float32 ``exp`` and
fixed-size stack arrays.

Without SVML (pip's llvmlite), ``np.exp`` in a Numba loop is a call to libm's scalar
``expf``, which stops LLVM's loop vectoriser. ``exp_f32`` uses only adds, multiplies, a
``floor`` and a bit cast, so a loop over it becomes 8-lane AVX2 code: ``exp(x) = 2^k
exp(r)`` with ``k = round(x / ln 2)``, ``r = x - k ln 2`` (ln 2 split in two parts so
that ``k ln 2`` is exact) and a degree-7 polynomial for ``exp(r)`` on ``|r| <= ln 2 / 2``
(Taylor-like coefficients of the classic Cephes ``expf`` form). Max relative error about
2 float32 ulp over ``[-87, 88]`` (checked against ``np.exp`` in float64 by the tests).

``stack_array(dtype, n)`` returns an ``n``-element array in the calling function's stack
frame. LLVM knows such memory cannot alias any heap array, so loops that read the heap and
write stack arrays (or the reverse) vectorise without runtime overlap checks; with heap
arrays on both sides LLVM must either prove the arrays distinct (it cannot) or emit such
checks, and it gives up beyond a handful of them. The array must not outlive its function
(never return or store it).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

_F = np.float32
_LOG2E = _F(1.4426950408889634)
_LN2_HI = _F(0.693359375)  # few mantissa bits: k * _LN2_HI is exact for |k| < 2^9
_LN2_LO = _F(-2.12194440e-4)
_X_MIN = _F(-87.0)  # exp(-87) ~ 1.6e-38: still a normal float32
_X_MAX = _F(88.0)
_HALF = _F(0.5)
_ONE = _F(1.0)
# polynomial of (exp(r) - 1 - r) / r^2 on |r| <= ln(2) / 2 (Cephes expf form)
_P0 = _F(1.9875691500e-4)
_P1 = _F(1.3981999507e-3)
_P2 = _F(8.3334519073e-3)
_P3 = _F(4.1665795894e-2)
_P4 = _F(1.6666665459e-1)
_P5 = _F(5.0000001201e-1)


@intrinsic
def _pow2_f32(typingctx, k):
    """2^k as float32 for a float32 integer k in [-126, 127], by building its bits
    (exponent field k + 127); vectorisable (convert + shift + bit cast)."""
    if k != types.float32:
        return None

    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        ki = builder.fptosi(args[0], i32)
        bits = builder.shl(builder.add(ki, i32(127)), i32(23))
        return builder.bitcast(bits, ir.FloatType())
    return types.float32(k), codegen


# 'contract' lets the polynomial use FMA (more accurate, not less); only on this helper
@njit(cache=True, nogil=True, fastmath={'nsz', 'arcp', 'contract'})
def exp_f32(x):
    """exp(x) of a float32, branch-free (see the module docstring); x is clamped to
    [-87, 88], so exp of anything below -87 returns ~1.6e-38 instead of 0."""
    x = min(max(x, _X_MIN), _X_MAX)
    k = np.floor(x * _LOG2E + _HALF)
    r = x - k * _LN2_HI
    r = r - k * _LN2_LO
    p = _P0 * r + _P1
    p = p * r + _P2
    p = p * r + _P3
    p = p * r + _P4
    p = p * r + _P5
    y = p * (r * r) + r + _ONE
    return y * _pow2_f32(k)


@njit(cache=True, nogil=True)
def exp_f32_array(x, out):
    """``out[i] = exp_f32(x[i])`` (for tests and for checking the vectorisation)."""
    for i in range(x.shape[0]):
        out[i] = exp_f32(x[i])


@intrinsic
def stack_array(typingctx, dtype, n):
    """A C-contiguous 1-D array of ``n`` (a compile-time constant) elements of ``dtype``
    (a NumPy scalar type such as ``np.float32``) on the stack of the calling function."""
    if not isinstance(n, types.IntegerLiteral) or not isinstance(dtype, types.NumberClass):
        return None
    elt = dtype.instance_type
    size = n.literal_value
    arr_t = types.Array(elt, 1, 'C')

    def codegen(context, builder, sig, args):
        lty = context.get_data_type(elt)
        ptr = cgutils.alloca_once(builder, lty, size=size)
        ary = context.make_array(arr_t)(context, builder)
        itemsize = context.get_abi_sizeof(lty)
        intp = context.get_value_type(types.intp)
        populate_array(ary, data=ptr, shape=[intp(size)], strides=[intp(itemsize)],
                       itemsize=intp(itemsize), meminfo=None)
        return ary._getvalue()
    return arr_t(dtype, n), codegen
