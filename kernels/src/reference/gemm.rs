//! Reference GEMM: C = alpha·op(A)·op(B) + beta·C, one dot product per element.

use crate::error::Result;
use crate::gemm::GemmDesc;

/// C = alpha·op(A)·op(B) + beta·C with the sizes and strides of `desc`.
///
/// Each element is a dot product accumulated in f64. With `beta == 0`, C is not read,
/// so NaN or garbage already in C does not leak into the result (BLAS semantics).
pub fn gemm(
    desc: &GemmDesc,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) -> Result<()> {
    desc.validate(a.len(), b.len(), c.len())?;
    let (rsa, csa) = desc.op_a_strides();
    let (rsb, csb) = desc.op_b_strides();
    let (rsc, csc) = (desc.c.row_stride, desc.c.col_stride);
    for i in 0..desc.m {
        for j in 0..desc.n {
            let dot: f64 = (0..desc.k)
                .map(|p| f64::from(a[i * rsa + p * csa]) * f64::from(b[p * rsb + j * csb]))
                .sum();
            let c_ij = &mut c[i * rsc + j * csc];
            let previous = if beta == 0.0 {
                0.0
            } else {
                f64::from(beta) * f64::from(*c_ij)
            };
            *c_ij = (f64::from(alpha) * dot + previous) as f32;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::{MatrixLayout, Transpose};

    #[test]
    fn small_product_by_hand() {
        // [1 2 3; 4 5 6] · [1 0; 0 1; 1 1] = [4 5; 10 11]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let mut c = [f32::NAN; 4];
        gemm(&GemmDesc::row_major(2, 2, 3), 1.0, &a, &b, 0.0, &mut c).unwrap();
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
        gemm(&GemmDesc::row_major(2, 2, 3), 2.0, &a, &b, -1.0, &mut c).unwrap();
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
    }

    #[test]
    fn transposes_read_the_stored_matrix_the_other_way() {
        // A stored as its transpose (3 × 2, row-major), B stored column-major.
        let a_t = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        let b_col = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
        let desc = GemmDesc {
            trans_a: Transpose::Yes,
            a: MatrixLayout::row_major(2),
            b: MatrixLayout::col_major(3),
            ..GemmDesc::row_major(2, 2, 3)
        };
        let mut c = [0.0; 4];
        gemm(&desc, 1.0, &a_t, &b_col, 0.0, &mut c).unwrap();
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
    }

    #[test]
    fn k_zero_scales_c_by_beta() {
        let mut c = [1.0, 2.0];
        gemm(&GemmDesc::row_major(1, 2, 0), 1.0, &[], &[], 3.0, &mut c).unwrap();
        assert_eq!(c, [3.0, 6.0]);
    }
}
