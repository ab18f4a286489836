//! Losses against PyTorch (mean reduction), the loss and its gradient: the reference
//! kernels, and the fast ones on every ISA path (same tolerance as the reference: the
//! fast kernels are within a few f32 ulp of it, far inside `support`'s 1e-4 relative).

use crate::support::{assert_close, golden_files, Golden};
use axonal_kernels::loss as fast;
use axonal_kernels::reference::{bce_with_logits, mse, softmax_cross_entropy};
use axonal_kernels::{Isa, Parallelism};

/// Golden files store class labels as f32 holding integers.
fn labels_of(g: &Golden) -> Vec<u32> {
    g.tensor("labels")
        .iter()
        .map(|&l| {
            assert!(
                l >= 0.0 && l.fract() == 0.0 && l <= u32::MAX as f32,
                "{}: label {l} is not a class index",
                g.name
            );
            l as u32
        })
        .collect()
}

/// Runs the file's loss, the fast kernel on `isa` or (None) the reference; returns
/// (loss, gradient, name of the gradient tensor).
///
/// The loss is chosen by the file name: the files' `op` metadata is a bare string,
/// not the JSON that `Golden::meta_str` reads.
fn run(g: &Golden, isa: Option<Isa>) -> (f32, Vec<f32>, &'static str) {
    let par = Parallelism::Threads(2);
    let name = &g.name;
    let fail = |e| panic!("{name}: {e}");
    let kind = name
        .strip_prefix("loss_")
        .and_then(|rest| rest.split('_').next());
    match kind {
        Some("xent") => {
            let [batch, classes] = g.shape("logits") else {
                panic!("{name}: logits are not 2-D");
            };
            let logits = g.tensor("logits");
            let mut grad = vec![f32::NAN; logits.len()];
            let labels = labels_of(g);
            let loss = match isa {
                Some(isa) => fast::softmax_cross_entropy_on(
                    isa, *batch, *classes, logits, &labels, &mut grad, par,
                ),
                None => softmax_cross_entropy(*batch, *classes, logits, &labels, &mut grad),
            }
            .unwrap_or_else(fail);
            (loss, grad, "dlogits")
        }
        Some("bce") => {
            let logits = g.tensor("logits");
            let mut grad = vec![f32::NAN; logits.len()];
            let targets = g.tensor("targets");
            let loss = match isa {
                Some(isa) => fast::bce_with_logits_on(isa, logits, targets, &mut grad, par),
                None => bce_with_logits(logits, targets, &mut grad),
            }
            .unwrap_or_else(fail);
            (loss, grad, "dlogits")
        }
        Some("mse") => {
            let pred = g.tensor("pred");
            let mut grad = vec![f32::NAN; pred.len()];
            let target = g.tensor("target");
            let loss = match isa {
                Some(isa) => fast::mse_on(isa, pred, target, &mut grad, par),
                None => mse(pred, target, &mut grad),
            }
            .unwrap_or_else(fail);
            (loss, grad, "dpred")
        }
        _ => panic!("{name}: unknown loss (expected loss_xent_*, loss_bce_* or loss_mse_*)"),
    }
}

#[test]
fn losses_match_pytorch() {
    for file in golden_files("loss_") {
        let g = Golden::load(&file);
        let (loss, grad, grad_key) = run(&g, None);
        assert_close(&format!("{file} loss"), &[loss], g.tensor("loss"));
        assert_close(&format!("{file} {grad_key}"), &grad, g.tensor(grad_key));
    }
}

#[test]
fn fast_losses_match_pytorch_on_every_isa() {
    for file in golden_files("loss_") {
        let g = Golden::load(&file);
        for isa in Isa::available() {
            let (loss, grad, grad_key) = run(&g, Some(isa));
            assert_close(&format!("{file} ({isa}) loss"), &[loss], g.tensor("loss"));
            assert_close(
                &format!("{file} ({isa}) {grad_key}"),
                &grad,
                g.tensor(grad_key),
            );
        }
    }
}
