//! Reference losses against PyTorch (mean reduction): the loss and its gradient.

use crate::support::{assert_close, golden_files, Golden};
use axonal_kernels::reference::{bce_with_logits, mse, softmax_cross_entropy};

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

/// Runs the file's loss; returns (loss, gradient, name of the gradient tensor).
///
/// The loss is chosen by the file name: the files' `op` metadata is a bare string,
/// not the JSON that `Golden::meta_str` reads.
fn run(g: &Golden) -> (f32, Vec<f32>, &'static str) {
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
            let loss = softmax_cross_entropy(*batch, *classes, logits, &labels_of(g), &mut grad)
                .unwrap_or_else(fail);
            (loss, grad, "dlogits")
        }
        Some("bce") => {
            let logits = g.tensor("logits");
            let mut grad = vec![f32::NAN; logits.len()];
            let loss = bce_with_logits(logits, g.tensor("targets"), &mut grad).unwrap_or_else(fail);
            (loss, grad, "dlogits")
        }
        Some("mse") => {
            let pred = g.tensor("pred");
            let mut grad = vec![f32::NAN; pred.len()];
            let loss = mse(pred, g.tensor("target"), &mut grad).unwrap_or_else(fail);
            (loss, grad, "dpred")
        }
        _ => panic!("{name}: unknown loss (expected loss_xent_*, loss_bce_* or loss_mse_*)"),
    }
}

#[test]
fn losses_match_pytorch() {
    for file in golden_files("loss_") {
        let g = Golden::load(&file);
        let (loss, grad, grad_key) = run(&g);
        assert_close(&format!("{file} loss"), &[loss], g.tensor("loss"));
        assert_close(&format!("{file} {grad_key}"), &grad, g.tensor(grad_key));
    }
}
