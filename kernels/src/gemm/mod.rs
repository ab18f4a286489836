//! General matrix multiply: C = alpha·op(A)·op(B) + beta·C.

mod desc;

pub use desc::{GemmDesc, MatrixLayout, Transpose};
