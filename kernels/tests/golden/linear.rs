//! `linear_*`: a linear layer's three products, each one reference GEMM call.
//!
//! y = x·wᵀ + b (bias folded in as beta·C with C preloaded), dx = dy·w, dw = dyᵀ·x,
//! db = Σ dy over the batch (a GEMM with a column of ones).

use crate::support::{assert_close, golden_files, Golden};
use axonal_kernels::gemm::{GemmDesc, MatrixLayout, Transpose};
use axonal_kernels::reference::gemm;

#[test]
fn linear_matches_pytorch() {
    for name in golden_files("linear_") {
        let g = Golden::load(&name);
        let (x, w, b, dy) = (g.tensor("x"), g.tensor("w"), g.tensor("b"), g.tensor("dy"));
        let (batch, inputs) = (g.shape("x")[0], g.shape("x")[1]);
        let outputs = g.shape("w")[0];

        // y = x · wᵀ + b: w is stored out × in, so op(B) = wᵀ reads it transposed.
        let mut y: Vec<f32> = (0..batch).flat_map(|_| b.iter().copied()).collect();
        let forward = GemmDesc {
            trans_b: Transpose::Yes,
            b: MatrixLayout::row_major(inputs),
            ..GemmDesc::row_major(batch, outputs, inputs)
        };
        gemm(&forward, 1.0, x, w, 1.0, &mut y).unwrap();
        assert_close(&format!("{name}: y"), &y, g.tensor("y"));

        // dx = dy · w (batch × out times out × in).
        let mut dx = vec![f32::NAN; batch * inputs];
        gemm(
            &GemmDesc::row_major(batch, inputs, outputs),
            1.0,
            dy,
            w,
            0.0,
            &mut dx,
        )
        .unwrap();
        assert_close(&format!("{name}: dx"), &dx, g.tensor("dx"));

        // dw = dyᵀ · x (out × batch times batch × in).
        let mut dw = vec![f32::NAN; outputs * inputs];
        let weights = GemmDesc {
            trans_a: Transpose::Yes,
            a: MatrixLayout::row_major(outputs),
            ..GemmDesc::row_major(outputs, inputs, batch)
        };
        gemm(&weights, 1.0, dy, x, 0.0, &mut dw).unwrap();
        assert_close(&format!("{name}: dw"), &dw, g.tensor("dw"));

        // db = dyᵀ · 1.
        let ones = vec![1.0f32; batch];
        let mut db = vec![f32::NAN; outputs];
        let bias = GemmDesc {
            trans_a: Transpose::Yes,
            a: MatrixLayout::row_major(outputs),
            ..GemmDesc::row_major(outputs, 1, batch)
        };
        gemm(&bias, 1.0, dy, &ones, 0.0, &mut db).unwrap();
        assert_close(&format!("{name}: db"), &db, g.tensor("db"));
    }
}
