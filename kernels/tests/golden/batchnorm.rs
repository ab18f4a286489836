//! Batch normalization against PyTorch's `BatchNorm2d`: training forward with the
//! running-statistics update, backward, and inference with the input statistics — the
//! reference kernels, and the fast ones on every ISA path.

use crate::support::{assert_close, golden_files, Golden};
use axonal_kernels::norm::{self as fast, BatchNormDesc};
use axonal_kernels::reference::{
    batch_norm_backward, batch_norm_forward_inference, batch_norm_forward_training,
};
use axonal_kernels::{Isa, Layout, Parallelism};

/// An NCHW tensor of `desc`'s sizes in `desc.layout`.
fn arrange(desc: &BatchNormDesc, nchw: &[f32]) -> Vec<f32> {
    let from = desc.layout(Layout::Nchw);
    let mut out = vec![0.0; nchw.len()];
    for n in 0..desc.batch {
        for c in 0..desc.channels {
            for s in 0..desc.spatial {
                out[desc.index(n, c, s)] = nchw[from.index(n, c, s)];
            }
        }
    }
    out
}

/// Runs every kernel on the file's data in `layout` and compares each output.
fn check(g: &Golden, layout: Layout) {
    let name = format!("{} ({})", g.name, layout.name());
    let [n, c, h, w] = g.shape("x") else {
        panic!("{name}: x is not 4-D");
    };
    let desc = BatchNormDesc::new(*n, *c, h * w)
        .layout(layout)
        .eps(g.meta_f64("eps") as f32);
    let momentum = g.meta_f64("momentum") as f32;
    let (gamma, beta) = (g.tensor("gamma"), g.tensor("beta"));
    let x = arrange(&desc, g.tensor("x"));
    let dy = arrange(&desc, g.tensor("dy"));
    let fail = |e| panic!("{name}: {e}");

    let mut running_mean = g.tensor("running_mean_in").to_vec();
    let mut running_var = g.tensor("running_var_in").to_vec();
    let mut y = vec![f32::NAN; x.len()];
    let mut saved_mean = vec![f32::NAN; *c];
    let mut saved_inv_std = vec![f32::NAN; *c];
    batch_norm_forward_training(
        &desc,
        &x,
        gamma,
        beta,
        momentum,
        &mut running_mean,
        &mut running_var,
        &mut y,
        &mut saved_mean,
        &mut saved_inv_std,
    )
    .unwrap_or_else(fail);
    assert_close(&format!("{name} y"), &y, &arrange(&desc, g.tensor("y")));
    assert_close(
        &format!("{name} running_mean_out"),
        &running_mean,
        g.tensor("running_mean_out"),
    );
    assert_close(
        &format!("{name} running_var_out"),
        &running_var,
        g.tensor("running_var_out"),
    );

    let mut dx = vec![f32::NAN; x.len()];
    let mut dgamma = vec![f32::NAN; *c];
    let mut dbeta = vec![f32::NAN; *c];
    batch_norm_backward(
        &desc,
        &x,
        &dy,
        gamma,
        &saved_mean,
        &saved_inv_std,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
    )
    .unwrap_or_else(fail);
    assert_close(&format!("{name} dx"), &dx, &arrange(&desc, g.tensor("dx")));
    assert_close(&format!("{name} dgamma"), &dgamma, g.tensor("dgamma"));
    assert_close(&format!("{name} dbeta"), &dbeta, g.tensor("dbeta"));

    let mut y_eval = vec![f32::NAN; x.len()];
    batch_norm_forward_inference(
        &desc,
        &x,
        gamma,
        beta,
        g.tensor("running_mean_in"),
        g.tensor("running_var_in"),
        &mut y_eval,
    )
    .unwrap_or_else(fail);
    assert_close(
        &format!("{name} y_eval"),
        &y_eval,
        &arrange(&desc, g.tensor("y_eval")),
    );
}

#[test]
fn batch_norm_matches_pytorch_in_both_layouts() {
    for file in golden_files("batchnorm_") {
        let g = Golden::load(&file);
        for layout in [Layout::Nchw, Layout::Nhwc] {
            check(&g, layout);
        }
    }
}

/// The fast kernels on one golden case, layout and ISA path, two threads.
fn check_fast(g: &Golden, layout: Layout, isa: Isa) {
    let name = format!("{} ({}, fast {isa})", g.name, layout.name());
    let [n, c, h, w] = g.shape("x") else {
        panic!("{name}: x is not 4-D");
    };
    let desc = BatchNormDesc::new(*n, *c, h * w)
        .layout(layout)
        .eps(g.meta_f64("eps") as f32);
    let momentum = g.meta_f64("momentum") as f32;
    let (gamma, beta) = (g.tensor("gamma"), g.tensor("beta"));
    let x = arrange(&desc, g.tensor("x"));
    let dy = arrange(&desc, g.tensor("dy"));
    let par = Parallelism::Threads(2);
    let fail = |e| panic!("{name}: {e}");

    let mut running_mean = g.tensor("running_mean_in").to_vec();
    let mut running_var = g.tensor("running_var_in").to_vec();
    let mut y = vec![f32::NAN; x.len()];
    let mut saved_mean = vec![f32::NAN; *c];
    let mut saved_inv_std = vec![f32::NAN; *c];
    fast::batch_norm_forward_training_on(
        isa,
        &desc,
        &x,
        gamma,
        beta,
        momentum,
        &mut running_mean,
        &mut running_var,
        &mut y,
        &mut saved_mean,
        &mut saved_inv_std,
        par,
    )
    .unwrap_or_else(fail);
    assert_close(&format!("{name} y"), &y, &arrange(&desc, g.tensor("y")));
    assert_close(
        &format!("{name} running_mean_out"),
        &running_mean,
        g.tensor("running_mean_out"),
    );
    assert_close(
        &format!("{name} running_var_out"),
        &running_var,
        g.tensor("running_var_out"),
    );

    let mut dx = vec![f32::NAN; x.len()];
    let mut dgamma = vec![f32::NAN; *c];
    let mut dbeta = vec![f32::NAN; *c];
    fast::batch_norm_backward_on(
        isa,
        &desc,
        &x,
        &dy,
        gamma,
        &saved_mean,
        &saved_inv_std,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
        par,
    )
    .unwrap_or_else(fail);
    assert_close(&format!("{name} dx"), &dx, &arrange(&desc, g.tensor("dx")));
    assert_close(&format!("{name} dgamma"), &dgamma, g.tensor("dgamma"));
    assert_close(&format!("{name} dbeta"), &dbeta, g.tensor("dbeta"));

    let mut y_eval = vec![f32::NAN; x.len()];
    fast::batch_norm_forward_inference_on(
        isa,
        &desc,
        &x,
        gamma,
        beta,
        g.tensor("running_mean_in"),
        g.tensor("running_var_in"),
        &mut y_eval,
        par,
    )
    .unwrap_or_else(fail);
    assert_close(
        &format!("{name} y_eval"),
        &y_eval,
        &arrange(&desc, g.tensor("y_eval")),
    );
}

#[test]
fn fast_batch_norm_matches_pytorch_on_every_isa_and_layout() {
    for file in golden_files("batchnorm_") {
        let g = Golden::load(&file);
        for isa in Isa::available() {
            for layout in [Layout::Nchw, Layout::Nhwc] {
                check_fast(&g, layout, isa);
            }
        }
    }
}
