#!/usr/bin/env python3
"""Fits the polynomial coefficients of the vector math in `vmath.rs` (needs mpmath only).

    python3 kernels/src/eltwise/fit_coefficients.py

Each polynomial is mpmath's `chebyfit` (interpolation at Chebyshev nodes, within a small
factor of the minimax error) of a smooth remainder, evaluated in 40-digit arithmetic and
rounded to f32. The printed fit errors are of the f64 polynomial; the errors of the f32
kernels are measured by `kernels/tests/eltwise.rs` and documented in `eltwise/mod.rs`.
"""
import struct

import mpmath as mp

mp.mp.dps = 40


def f32(value):
    return struct.unpack("f", struct.pack("f", float(value)))[0]


def rust_literal(value):
    """The shortest decimal that reads back as the same f32."""
    for digits in range(6, 10):
        text = "%.*e" % (digits - 1, value)
        if f32(float(text)) == value:
            return text
    raise ValueError(value)


def show(name, fun, interval, degree):
    coefficients, error = mp.chebyfit(fun, interval, degree + 1, error=True)
    print("// %s: degree %d on [%s, %s], fit error %s" % (
        name, degree, mp.nstr(interval[0], 6), mp.nstr(interval[1], 6), mp.nstr(error, 3)))
    rounded = [rust_literal(f32(c)) for c in reversed(coefficients)]
    print("const %s: [f32; %d] = [%s];" % (name, degree + 1, ", ".join(rounded)))


# e^r = 1 + r·(1 + r·(1/2 + r·T(r))) for |r| ≤ ln(2)/2, with a margin for the rounding of
# n = round(x/ln 2) when it is computed without FMA.
def expm1_tail(r):
    if abs(r) < mp.mpf("1e-10"):
        return mp.mpf(1) / 6 + r / 24
    return (mp.expm1(r) / r - 1 - r / 2) / (r * r)


show("EXPM1_TAIL", expm1_tail, [-0.35, 0.35], 4)


# erf(a) = a·E(a²) for 0 ≤ a ≤ 0.75.
def erf_small(t):
    if t == 0:
        return 2 / mp.sqrt(mp.pi)
    return mp.erf(mp.sqrt(t)) / mp.sqrt(t)


show("ERF_SMALL", erf_small, [0, 0.5625], 5)


# erfc(a) = exp(G(a - 2.75) - a²) for 0.75 ≤ a ≤ 4.75: log(erfc a) + a² is smooth and
# slowly varying, so a low-degree polynomial keeps erfc's relative accuracy in the tail.
show("ERFC_LOG", lambda s: mp.log(mp.erfc(s + 2.75)) + (s + 2.75) ** 2, [-2, 2], 10)
