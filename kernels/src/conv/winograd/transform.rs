//! The transforms of Winograd's F(4×4, 3×3): 6×6 input tiles, 3×3 filters, 4×4 outputs.
//!
//! A 1-D correlation of 6 inputs d with 3 taps g gives 4 outputs y = Aᵀ[(G g) ⊙ (Bᵀ d)]:
//! 6 multiplications instead of 12. Nested over rows and columns, a 4×4 output tile costs
//! 36 multiplications per channel pair instead of 144, and across channels those 36
//! become 36 independent GEMMs. The matrices are Lavin and Gray's (interpolation points
//! 0, ±1, ±2, ∞; the tests below hold the functions to them); each 1-D transform is
//! written out with its shared terms, and a 2-D transform is the 1-D one along the rows
//! of a tile, then along its columns.

use crate::eltwise::lanes::{load_n, store_n, Lanes};

/// Side of an input tile (and of a transformed tile).
pub(super) const ALPHA: usize = 6;
/// Side of an output tile.
pub(super) const TILE: usize = 4;
/// Side of the filter.
pub(super) const TAPS: usize = 3;
/// Points of a transformed tile: one GEMM each.
pub(super) const POINTS: usize = ALPHA * ALPHA;

/// The ±1/6 entries of G (and Gᵀ).
const SIXTH: f32 = 1.0 / 6.0;

/// Bᵀ d: six inputs to the transformed domain, in 12 operations.
#[inline(always)]
pub(super) fn input<L: Lanes>(d: [L; ALPHA]) -> [L; ALPHA] {
    let four = L::splat(4.0);
    let minus_four = L::splat(-4.0);
    let minus_five = L::splat(-5.0);
    let two = L::splat(2.0);
    let t0 = d[2].mul_add(minus_four, d[4]); // d4 − 4·d2
    let t1 = d[1].mul_add(minus_four, d[3]); // d3 − 4·d1
    let t2 = d[4] - d[2];
    let t3 = d[3] - d[1];
    [
        d[0].mul_add(four, d[2].mul_add(minus_five, d[4])),
        t1 + t0,
        t0 - t1,
        t3.mul_add(two, t2),
        t2 - t3 * two,
        d[1].mul_add(four, d[3].mul_add(minus_five, d[5])),
    ]
}

/// Aᵀ m: six transformed products back to four outputs.
#[inline(always)]
pub(super) fn output<L: Lanes>(m: [L; ALPHA]) -> [L; TILE] {
    let sum_12 = m[1] + m[2];
    let sum_34 = m[3] + m[4];
    let diff_12 = m[1] - m[2];
    let diff_34 = m[3] - m[4];
    [
        m[0] + sum_12 + sum_34,
        diff_34.mul_add(L::splat(2.0), diff_12),
        sum_34.mul_add(L::splat(4.0), sum_12),
        diff_34.mul_add(L::splat(8.0), diff_12) + m[5],
    ]
}

/// A v: four output gradients to the transformed domain (the adjoint of [`output`]),
/// for the weight gradient.
#[inline(always)]
pub(super) fn gradient<L: Lanes>(v: [L; TILE]) -> [L; ALPHA] {
    let even = v[0] + v[2];
    let odd = v[1] + v[3];
    let even4 = v[2].mul_add(L::splat(4.0), v[0]);
    let odd8 = v[3].mul_add(L::splat(4.0), v[1]) * L::splat(2.0);
    [
        v[0],
        even + odd,
        even - odd,
        even4 + odd8,
        even4 - odd8,
        v[3],
    ]
}

/// Gᵀ u: a transformed weight gradient back to three taps (the adjoint of [`filter`]).
#[inline(always)]
pub(super) fn filter_gradient<L: Lanes>(u: [L; ALPHA]) -> [L; TAPS] {
    let sixth = L::splat(SIXTH);
    let sum_12 = u[1] + u[2];
    let diff_12 = u[2] - u[1];
    let sum_34 = u[3] + u[4];
    let diff_34 = u[3] - u[4];
    [
        u[0] * L::splat(0.25) - sum_12 * sixth + sum_34 * L::splat(1.0 / 24.0),
        diff_12 * sixth + diff_34 * L::splat(1.0 / 12.0),
        (sum_34 - sum_12) * sixth + u[5],
    ]
}

/// G g: three filter taps to the transformed domain.
#[inline(always)]
fn filter<L: Lanes>(g: [L; TAPS]) -> [L; ALPHA] {
    let sixth = L::splat(SIXTH);
    let outer = g[0] + g[2];
    let even = g[0] * L::splat(1.0 / 24.0) + g[2] * sixth;
    let odd = g[1] * L::splat(1.0 / 12.0);
    [
        g[0] * L::splat(0.25),
        -(outer + g[1]) * sixth,
        -(outer - g[1]) * sixth,
        even + odd,
        even - odd,
        g[2],
    ]
}

/// The 2-D transform of a tile by the 1-D transform `$f` (N to M values): `$f` along
/// the N rows — row `$a` given by `$row` — then along the columns of the result, giving
/// an M×M tile. A macro, not a function taking `$f`: called through `Fn`, the transform
/// would be compiled out of line, without the SIMD path's `target_feature`s; and the
/// rows, produced as they are needed, never sit in a tile of their own.
macro_rules! rows_then_columns {
    (|$a:ident| $row:expr, $f:ident, $n:expr => $m:expr) => {{
        // The arrays start as copies of the first row's transform, not as zeros: a tile
        // of zero vectors compiles to a `memset` call per tile (≈ 4% of a training
        // step), and these values are all overwritten anyway.
        let first = {
            let $a = 0;
            $f($row)
        };
        let mut rows = [first; $n];
        for ($a, row) in rows.iter_mut().enumerate().skip(1) {
            *row = $f($row);
        }
        let mut out = [[first[0]; $m]; $m];
        for j in 0..$m {
            let mut column = [first[0]; $n];
            for (c, row) in column.iter_mut().zip(rows.iter()) {
                *c = row[j];
            }
            for (out_row, value) in out.iter_mut().zip($f(column)) {
                out_row[j] = value;
            }
        }
        out
    }};
}
pub(super) use rows_then_columns;

/// Gᵀ u G: a 6×6 transformed weight gradient back to 3×3 taps (a vector of them at
/// once).
#[inline(always)]
pub(super) fn filter_gradient_tile<L: Lanes>(u: &[[L; ALPHA]; ALPHA]) -> [[L; TAPS]; TAPS] {
    rows_then_columns!(|a| u[a], filter_gradient, ALPHA => TAPS)
}

/// G g Gᵀ: a 3×3 filter to the transformed domain (a vector of filters at once).
#[inline(always)]
pub(super) fn filter_tile<L: Lanes>(g: &[[L; TAPS]; TAPS]) -> [[L; ALPHA]; ALPHA] {
    rows_then_columns!(|r| g[r], filter, TAPS => ALPHA)
}

/// `f` applied to each of the `rows × cols` small matrices (`IN × IN` to `OUT × OUT`)
/// that `src` holds point-major: element (a, b) of matrix (i, j) at
/// `src[(a·IN + b)·rows·cols + i·cols + j]`, and likewise into `dst`. A vector of
/// matrices along j at a time: the filter transforms, and their adjoint.
#[inline(always)]
pub(super) fn transform_matrices<L: Lanes, const IN: usize, const OUT: usize>(
    src: &[f32],
    (rows, cols): (usize, usize),
    dst: &mut [f32],
    f: impl Fn(&[[L; IN]; IN]) -> [[L; OUT]; OUT],
) {
    // Consecutive points are a whole matrix apart.
    let stride = rows * cols;
    for i in 0..rows {
        let mut j = 0;
        while j < cols {
            let n = L::LANES.min(cols - j);
            let at = i * cols + j;
            let m: [[L; IN]; IN] = std::array::from_fn(|a| {
                std::array::from_fn(|b| load_n(src, (a * IN + b) * stride + at, n))
            });
            for (point, &value) in f(&m).iter().flatten().enumerate() {
                store_n(value, dst, point * stride + at, n);
            }
            j += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BT: [[f64; ALPHA]; ALPHA] = [
        [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ];
    const G: [[f64; TAPS]; ALPHA] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    const AT: [[f64; ALPHA]; TILE] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ];

    fn transposed<const N: usize, const R: usize>(m: &[[f64; N]; R]) -> [[f64; R]; N] {
        std::array::from_fn(|j| std::array::from_fn(|i| m[i][j]))
    }

    fn times<const N: usize, const R: usize>(m: &[[f64; N]; R], v: &[f32]) -> Vec<f64> {
        m.iter()
            .map(|row| row.iter().zip(v).map(|(c, &x)| c * f64::from(x)).sum())
            .collect()
    }

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!(
                (f64::from(*g) - w).abs() <= 1e-6 * (1.0 + w.abs()),
                "{got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn the_transforms_are_the_matrices() {
        let d = [0.3f32, -1.7, 2.5, 0.9, -0.4, 1.1];
        close(&input(d), &times(&BT, &d));
        close(&output(d), &times(&AT, &d));
        let g = [0.7f32, -0.2, 1.3];
        close(&filter(g), &times(&G, &g));
        let v = [0.3f32, -1.7, 2.5, 0.9];
        close(&gradient(v), &times(&transposed(&AT), &v));
        close(&filter_gradient(d), &times(&transposed(&G), &d));
    }

    #[test]
    fn a_tile_correlates_with_the_filter() {
        let d: [[f32; ALPHA]; ALPHA] =
            std::array::from_fn(|i| std::array::from_fn(|j| ((i * 7 + j * 3) % 11) as f32 - 5.0));
        let g: [[f32; TAPS]; TAPS] =
            std::array::from_fn(|r| std::array::from_fn(|s| ((r * 5 + s * 2) % 7) as f32 - 3.0));
        let v = rows_then_columns!(|a| d[a], input, ALPHA => ALPHA);
        let u = filter_tile(&g);
        let products: [[f32; ALPHA]; ALPHA] =
            std::array::from_fn(|i| std::array::from_fn(|j| v[i][j] * u[i][j]));
        let y = rows_then_columns!(|a| products[a], output, ALPHA => TILE);
        for i in 0..TILE {
            for j in 0..TILE {
                let mut want = 0.0;
                for r in 0..TAPS {
                    for s in 0..TAPS {
                        want += d[i + r][j + s] * g[r][s];
                    }
                }
                assert!(
                    (y[i][j] - want).abs() < 1e-3,
                    "[{i}][{j}] {} vs {want}",
                    y[i][j]
                );
            }
        }
    }
}
