//! One training step of the seed CNN against PyTorch (`shared/golden/train_step_*`):
//! PyTorch's weights are loaded into the graph, which must reproduce PyTorch's logits,
//! loss, every gradient and the weights after one Adam(1e-3) step.
//!
//! Tolerance: relative 1e-4 or absolute 1e-5 per element, as for the kernels; the
//! gradients of the first layers sum thousands of f32 products, so they get an absolute
//! tolerance scaled by the largest gradient of their tensor (1e-4 of it).

use axonal::kernels::optim::Adam;
use axonal::models;
use axonal::optim::{Method, Optimizer};
use axonal::{Context, Graph, Loss, Rng, Target};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::PathBuf;

struct Golden {
    tensors: HashMap<String, Vec<f32>>,
    meta: HashMap<String, String>,
}

fn load(name: &str) -> Golden {
    let dir = std::env::var_os("AXONAL_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/golden"));
    let path = dir.join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = metadata.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let tensors = file
        .tensors()
        .into_iter()
        .map(|(key, view)| {
            assert_eq!(view.dtype(), Dtype::F32, "{name}: {key} is not f32");
            let data = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (key, data)
        })
        .collect();
    Golden { tensors, meta }
}

impl Golden {
    fn get(&self, key: &str) -> &[f32] {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("no tensor {key}"))
    }

    fn param_order(&self) -> Vec<String> {
        serde_json::from_str(&self.meta["param_order"]).unwrap()
    }
}

fn assert_close(what: &str, got: &[f32], want: &[f32], abs: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(g) - f64::from(w)).abs();
        assert!(
            err <= 1e-4 * f64::from(w).abs() || err <= abs,
            "{what}[{i}]: got {g:e}, want {w:e}"
        );
    }
}

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0.0f64, |m, &x| m.max(f64::from(x).abs()))
}

/// Loads the golden parameters into `graph` in PyTorch's parameter order.
fn load_params(graph: &mut Graph, golden: &Golden, order: &[String]) {
    let mut i = 0;
    graph.visit_params(&mut |p| {
        let want = golden.get(&format!("param.{}", order[i]));
        assert_eq!(p.value.len(), want.len(), "{} vs {}", p.name, order[i]);
        p.value.copy_from_slice(want);
        i += 1;
    });
    assert_eq!(i, order.len(), "parameter count");
}

/// The batch-norm buffers of the file, in layer order: (layer index, running_mean,
/// running_var) names without their `buffer.` / `buffer_after.` prefix.
fn buffer_names(golden: &Golden) -> Vec<String> {
    let mut layers: Vec<usize> = golden
        .tensors
        .keys()
        .filter_map(|k| k.strip_prefix("buffer.")?.split('.').next()?.parse().ok())
        .collect();
    layers.sort();
    layers.dedup();
    layers
        .iter()
        .flat_map(|l| [format!("{l}.running_mean"), format!("{l}.running_var")])
        .collect()
}

fn buffers(graph: &mut Graph) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    graph.visit_buffers(&mut |_, b| out.push(b.clone()));
    out
}

#[test]
fn seed_cnn_matches_pytorch_for_one_adam_step() {
    check_train_step("train_step_seed_cnn.safetensors", models::seed_cnn);
}

#[test]
fn seed_cnn_bn_matches_pytorch_for_one_adam_step() {
    check_train_step("train_step_seed_cnn_bn.safetensors", models::seed_cnn_bn);
}

fn check_train_step(file: &str, build: fn(&mut Rng) -> axonal::Result<Graph>) {
    let golden = load(file);
    let order = golden.param_order();
    let mut graph = build(&mut Rng::new(0)).unwrap();
    load_params(&mut graph, &golden, &order);
    let names = buffer_names(&golden);
    let mut at = 0;
    graph.visit_buffers(&mut |name, b| {
        let want = golden.get(&format!("buffer.{}", names[at]));
        assert_eq!(b.len(), want.len(), "{name}");
        b.copy_from_slice(want);
        at += 1;
    });
    assert_eq!(at, names.len(), "batch-norm buffers");
    let x = golden.get("x");
    let labels: Vec<u32> = golden.get("labels").iter().map(|&l| l as u32).collect();
    graph.input_mut(labels.len()).unwrap().copy_from_slice(x);
    let ctx = Context::default();
    let logits = graph.forward(&ctx).unwrap().clone();
    assert_close("logits", logits.data(), golden.get("logits"), 1e-5);
    let mut grad = vec![0.0; logits.len()];
    let loss = Loss::SoftmaxCrossEntropy
        .forward_backward(&logits, Target::Labels(&labels), &mut grad, ctx.par)
        .unwrap();
    assert_close("loss", &[loss], golden.get("loss"), 1e-5);
    graph.output_grad_mut().copy_from_slice(&grad);
    graph.backward(&ctx).unwrap();
    let mut i = 0;
    graph.visit_params(&mut |p| {
        let want = golden.get(&format!("grad.{}", order[i]));
        assert_close(&p.name, &p.grad, want, 1e-5f64.max(1e-4 * max_abs(want)));
        i += 1;
    });
    let lr: f32 = golden.meta["lr"].parse().unwrap();
    let mut adam = Optimizer::new(Method::Adam(Adam::new(lr))).unwrap();
    adam.step(&mut graph, ctx.par).unwrap();
    // Adam's first step moves each weight by lr·g/(|g| + eps): where g is not far above
    // eps = 1e-8 that depends on g's last digits, so the gradient's tolerance δ is
    // carried through (the derivative is lr·eps/(|g| + eps)²).
    let mut i = 0;
    graph.visit_params(&mut |p| {
        let key = &order[i];
        let (want, g) = (
            golden.get(&format!("updated.{key}")),
            golden.get(&format!("grad.{key}")),
        );
        let delta = 1e-5f64.max(1e-4 * max_abs(g));
        for (j, (&got, &w)) in p.value.iter().zip(want).enumerate() {
            let gj = f64::from(g[j]).abs();
            let carried = f64::from(lr) * (delta * 1e-8 / (gj + 1e-8).powi(2)).min(2.0);
            let err = (f64::from(got) - f64::from(w)).abs();
            assert!(
                err <= 1e-4 * f64::from(w).abs() || err <= 1e-5 + carried,
                "updated {}[{j}]: got {got:e}, want {w:e} (gradient {:e})",
                p.name,
                g[j]
            );
        }
        i += 1;
    });
    for (got, name) in buffers(&mut graph).iter().zip(&names) {
        assert_close(name, got, golden.get(&format!("buffer_after.{name}")), 1e-5);
    }
}
