//! The shape of a GEMM call: sizes, transposes and strides, checked against the slices.

use crate::error::{check_len, KernelError, Result};

/// Whether an operand is used as stored or transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transpose {
    #[default]
    No,
    Yes,
}

/// Where element (i, j) of a stored matrix lives: `i * row_stride + j * col_stride`.
///
/// Row-major `rows × cols` is `{ row_stride: cols, col_stride: 1 }`; column-major is
/// `{ row_stride: 1, col_stride: rows }`; any other pair of strides is a general layout
/// (a sub-matrix of a larger one, a matrix with padded rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatrixLayout {
    pub row_stride: usize,
    pub col_stride: usize,
}

impl MatrixLayout {
    /// Dense row-major storage of a matrix with `cols` columns.
    pub fn row_major(cols: usize) -> MatrixLayout {
        MatrixLayout {
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// Dense column-major storage of a matrix with `rows` rows.
    pub fn col_major(rows: usize) -> MatrixLayout {
        MatrixLayout {
            row_stride: 1,
            col_stride: rows,
        }
    }

    /// Elements a slice must hold to store a `rows × cols` matrix with these strides.
    pub fn span(&self, what: &'static str, rows: usize, cols: usize) -> Result<usize> {
        if rows == 0 || cols == 0 {
            return Ok(0);
        }
        (rows - 1)
            .checked_mul(self.row_stride)
            .and_then(|r| (cols - 1).checked_mul(self.col_stride).map(|c| (r, c)))
            .and_then(|(r, c)| r.checked_add(c))
            .and_then(|last| last.checked_add(1))
            .ok_or(KernelError::SizeOverflow { what })
    }

    /// Whether two distinct elements of a `rows × cols` matrix share an address.
    ///
    /// Only layouts whose rows (or columns) do not interleave are accepted as
    /// non-overlapping; that covers every dense and padded layout.
    pub fn overlaps(&self, rows: usize, cols: usize) -> bool {
        if rows == 0 || cols == 0 {
            return false;
        }
        let (rs, cs) = (self.row_stride, self.col_stride);
        let rows_apart = rows <= 1 || cols.checked_mul(cs).is_some_and(|w| rs >= w.max(1));
        let cols_apart = cols <= 1 || rows.checked_mul(rs).is_some_and(|h| cs >= h.max(1));
        // A single row needs a nonzero column stride (and vice versa).
        let row_ok = cols <= 1 || cs > 0;
        let col_ok = rows <= 1 || rs > 0;
        !((rows_apart && row_ok) || (cols_apart && col_ok))
    }
}

/// C = alpha · op(A) · op(B) + beta · C, with op(A) of size `m × k`, op(B) `k × n`, C `m × n`.
///
/// `a` and `b` describe the matrices as stored: with [`Transpose::Yes`] the stored A is
/// `k × m`. With `beta == 0` C is overwritten and never read (NaN in C does not leak),
/// as in BLAS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmDesc {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: Transpose,
    pub trans_b: Transpose,
    pub a: MatrixLayout,
    pub b: MatrixLayout,
    pub c: MatrixLayout,
}

impl GemmDesc {
    /// Dense row-major A (`m × k`), B (`k × n`) and C (`m × n`), no transposes.
    pub fn row_major(m: usize, n: usize, k: usize) -> GemmDesc {
        GemmDesc {
            m,
            n,
            k,
            trans_a: Transpose::No,
            trans_b: Transpose::No,
            a: MatrixLayout::row_major(k),
            b: MatrixLayout::row_major(n),
            c: MatrixLayout::row_major(n),
        }
    }

    /// Strides of op(A) as an `m × k` matrix: (row stride, column stride).
    pub fn op_a_strides(&self) -> (usize, usize) {
        op_strides(self.a, self.trans_a)
    }

    /// Strides of op(B) as a `k × n` matrix: (row stride, column stride).
    pub fn op_b_strides(&self) -> (usize, usize) {
        op_strides(self.b, self.trans_b)
    }

    /// Checks the strides against the slice lengths, and that C has no two elements at
    /// one address (which would make the result depend on the order of the writes).
    pub fn validate(&self, a_len: usize, b_len: usize, c_len: usize) -> Result<()> {
        let (a_rows, a_cols) = stored_dims(self.m, self.k, self.trans_a);
        let (b_rows, b_cols) = stored_dims(self.k, self.n, self.trans_b);
        check_len("gemm A", self.a.span("gemm A", a_rows, a_cols)?, a_len)?;
        check_len("gemm B", self.b.span("gemm B", b_rows, b_cols)?, b_len)?;
        check_len("gemm C", self.c.span("gemm C", self.m, self.n)?, c_len)?;
        if self.c.overlaps(self.m, self.n) {
            return Err(KernelError::invalid(
                "gemm C strides",
                format!(
                    "row stride {} and column stride {} make elements of the {}x{} C overlap",
                    self.c.row_stride, self.c.col_stride, self.m, self.n
                ),
            ));
        }
        Ok(())
    }

    /// Floating-point operations of the call (2·m·n·k), for GFLOP/s figures.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }
}

fn stored_dims(rows: usize, cols: usize, t: Transpose) -> (usize, usize) {
    match t {
        Transpose::No => (rows, cols),
        Transpose::Yes => (cols, rows),
    }
}

fn op_strides(stored: MatrixLayout, t: Transpose) -> (usize, usize) {
    match t {
        Transpose::No => (stored.row_stride, stored.col_stride),
        Transpose::Yes => (stored.col_stride, stored.row_stride),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_of_dense_and_padded_layouts() {
        assert_eq!(MatrixLayout::row_major(5).span("t", 3, 5).unwrap(), 15);
        assert_eq!(MatrixLayout::col_major(3).span("t", 3, 5).unwrap(), 15);
        let padded = MatrixLayout {
            row_stride: 8,
            col_stride: 1,
        };
        assert_eq!(padded.span("t", 3, 5).unwrap(), 21);
        assert_eq!(padded.span("t", 0, 5).unwrap(), 0);
    }

    #[test]
    fn overlapping_c_is_rejected() {
        let desc = GemmDesc {
            c: MatrixLayout {
                row_stride: 0,
                col_stride: 1,
            },
            ..GemmDesc::row_major(2, 2, 2)
        };
        assert!(matches!(
            desc.validate(4, 4, 4),
            Err(KernelError::InvalidParameter { .. })
        ));
        assert!(GemmDesc::row_major(2, 2, 2).validate(4, 4, 4).is_ok());
        // An empty C has no two elements to overlap, whatever its strides.
        let empty = GemmDesc {
            c: MatrixLayout::col_major(0),
            ..GemmDesc::row_major(0, 5, 2)
        };
        assert!(empty.validate(0, 10, 0).is_ok());
        let col = GemmDesc {
            c: MatrixLayout::col_major(2),
            ..GemmDesc::row_major(2, 2, 2)
        };
        assert!(col.validate(4, 4, 4).is_ok());
    }

    #[test]
    fn short_slices_are_reported_with_sizes() {
        let err = GemmDesc::row_major(3, 4, 5)
            .validate(15, 19, 12)
            .unwrap_err();
        assert_eq!(
            err,
            KernelError::BufferTooSmall {
                what: "gemm B",
                needed: 20,
                got: 19
            }
        );
    }

    #[test]
    fn transposed_a_is_stored_k_by_m() {
        let desc = GemmDesc {
            trans_a: Transpose::Yes,
            a: MatrixLayout::row_major(3),
            ..GemmDesc::row_major(3, 4, 5)
        };
        assert!(desc.validate(15, 20, 12).is_ok());
        assert_eq!(desc.op_a_strides(), (1, 3));
    }
}
