//! Reference optimizer steps against `torch.optim`: five steps from p0 with the
//! gradients grad0..grad4, the parameters compared after each step.
//!
//! The golden files carried the optimizer state in f64 between steps; the reference
//! stores it as f32, as the fast kernels do. The tolerance (`support`'s 1e-4 relative,
//! 1e-5 absolute) absorbs that rounding; the fast kernels, on every ISA path, run the
//! same five steps with their own f32 state and meet the same tolerance (they are
//! within a few f32 ulp of the reference per step, see `kernels/tests/optim.rs`).

use crate::support::{assert_close, golden_files, Golden};
use axonal_kernels::optim::{self as fast, Adagrad, Adam, RmsProp, Sgd};
use axonal_kernels::reference::{adagrad_step, adam_step, rmsprop_step, sgd_step};
use axonal_kernels::{Isa, Parallelism};
use serde_json::{Map, Value};

/// The `hyper` metadata (PyTorch keyword arguments), taken key by key so that a key
/// the test does not apply fails it instead of being ignored.
struct Hyper {
    file: String,
    args: Map<String, Value>,
}

impl Hyper {
    fn of(g: &Golden) -> Hyper {
        match g.meta("hyper") {
            Some(Value::Object(args)) => Hyper {
                file: g.name.clone(),
                args,
            },
            other => panic!("{}: hyper is not a JSON object: {other:?}", g.name),
        }
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.args.remove(key)
    }

    fn number(&mut self, key: &str, default: f32) -> f32 {
        self.take(key).map_or(default, |v| {
            v.as_f64()
                .unwrap_or_else(|| panic!("{}: {key} = {v} is not a number", self.file))
                as f32
        })
    }

    fn flag(&mut self, key: &str, default: bool) -> bool {
        self.take(key).map_or(default, |v| {
            v.as_bool()
                .unwrap_or_else(|| panic!("{}: {key} = {v} is not a boolean", self.file))
        })
    }

    fn pair(&mut self, key: &str, default: (f32, f32)) -> (f32, f32) {
        self.take(key)
            .map_or(default, |v| match v.as_array().map(Vec::as_slice) {
                Some([a, b]) if a.is_number() && b.is_number() => (
                    a.as_f64().unwrap_or_default() as f32,
                    b.as_f64().unwrap_or_default() as f32,
                ),
                _ => panic!("{}: {key} = {v} is not a pair of numbers", self.file),
            })
    }

    fn finish(self) {
        assert!(
            self.args.is_empty(),
            "{}: hyper-parameters the test does not apply: {:?}",
            self.file,
            self.args
        );
    }
}

/// An optimizer with its state buffers.
enum Optimizer {
    Sgd(Sgd, Vec<f32>),
    Adam(Adam, Vec<f32>, Vec<f32>),
    RmsProp(RmsProp, Vec<f32>, Vec<f32>, Vec<f32>),
    Adagrad(Adagrad, Vec<f32>),
}

impl Optimizer {
    /// Builds the file's optimizer from PyTorch's defaults and its `hyper`. The state
    /// is NaN: step 1 must initialize it as PyTorch does, without reading it.
    fn of(g: &Golden, len: usize) -> Optimizer {
        let mut hyper = Hyper::of(g);
        let lr = hyper.number("lr", f32::NAN);
        let state = || vec![f32::NAN; len];
        let optimizer = match g.meta_str("kind").as_str() {
            "sgd" | "sgd_momentum" | "sgd_nesterov" => {
                let d = Sgd::new(lr);
                let h = Sgd {
                    momentum: hyper.number("momentum", d.momentum),
                    dampening: hyper.number("dampening", d.dampening),
                    weight_decay: hyper.number("weight_decay", d.weight_decay),
                    nesterov: hyper.flag("nesterov", d.nesterov),
                    ..d
                };
                Optimizer::Sgd(h, state())
            }
            kind @ ("adam" | "adam_l2" | "adamw") => {
                // AdamW's default weight decay (0.01) is not Adam's (0).
                let d = if kind == "adamw" {
                    Adam::adamw(lr, 0.01)
                } else {
                    Adam::new(lr)
                };
                let (beta1, beta2) = hyper.pair("betas", (d.beta1, d.beta2));
                let h = Adam {
                    beta1,
                    beta2,
                    eps: hyper.number("eps", d.eps),
                    weight_decay: hyper.number("weight_decay", d.weight_decay),
                    ..d
                };
                Optimizer::Adam(h, state(), state())
            }
            "rmsprop" => {
                let d = RmsProp::new(lr);
                let h = RmsProp {
                    alpha: hyper.number("alpha", d.alpha),
                    eps: hyper.number("eps", d.eps),
                    weight_decay: hyper.number("weight_decay", d.weight_decay),
                    momentum: hyper.number("momentum", d.momentum),
                    centered: hyper.flag("centered", d.centered),
                    ..d
                };
                Optimizer::RmsProp(h, state(), state(), state())
            }
            "adagrad" => {
                let d = Adagrad::new(lr);
                let h = Adagrad {
                    lr_decay: hyper.number("lr_decay", d.lr_decay),
                    weight_decay: hyper.number("weight_decay", d.weight_decay),
                    initial_accumulator_value: hyper
                        .number("initial_accumulator_value", d.initial_accumulator_value),
                    eps: hyper.number("eps", d.eps),
                    ..d
                };
                Optimizer::Adagrad(h, state())
            }
            other => panic!("{}: unknown optimizer kind {other:?}", g.name),
        };
        hyper.finish();
        optimizer
    }

    /// One step of the reference (`isa` None) or of the fast kernel on `isa`.
    fn step(
        &mut self,
        isa: Option<Isa>,
        t: u64,
        param: &mut [f32],
        grad: &[f32],
    ) -> axonal_kernels::Result<()> {
        let par = Parallelism::Threads(2);
        if let Some(isa) = isa {
            return match self {
                Optimizer::Sgd(h, buf) => fast::sgd_step_on(isa, h, t, param, grad, buf, par),
                Optimizer::Adam(h, m, v) => fast::adam_step_on(isa, h, t, param, grad, m, v, par),
                Optimizer::RmsProp(h, sq, mean, buf) => {
                    fast::rmsprop_step_on(isa, h, t, param, grad, sq, mean, buf, par)
                }
                Optimizer::Adagrad(h, sum) => {
                    fast::adagrad_step_on(isa, h, t, param, grad, sum, par)
                }
            };
        }
        match self {
            Optimizer::Sgd(h, buf) => sgd_step(h, t, param, grad, buf),
            Optimizer::Adam(h, m, v) => adam_step(h, t, param, grad, m, v),
            Optimizer::RmsProp(h, sq, mean, buf) => rmsprop_step(h, t, param, grad, sq, mean, buf),
            Optimizer::Adagrad(h, sum) => adagrad_step(h, t, param, grad, sum),
        }
    }
}

/// Five steps of the file's optimizer (reference or fast on `isa`), each checked.
fn check_file(file: &str, isa: Option<Isa>) {
    let g = Golden::load(file);
    let mut param = g.tensor("p0").to_vec();
    let mut optimizer = Optimizer::of(&g, param.len());
    let steps = g.meta_f64("steps") as u64;
    assert!(steps > 0, "{file}: no step");
    let path = isa.map_or("reference", Isa::name);
    for t in 1..=steps {
        let grad = g.tensor(&format!("grad{}", t - 1));
        optimizer
            .step(isa, t, &mut param, grad)
            .unwrap_or_else(|e| panic!("{file} ({path}) step {t}: {e}"));
        assert_close(
            &format!("{file} ({path}) p{t}"),
            &param,
            g.tensor(&format!("p{t}")),
        );
    }
}

#[test]
fn optimizers_match_pytorch_over_five_steps() {
    for file in golden_files("optim_") {
        check_file(&file, None);
    }
}

#[test]
fn fast_optimizers_match_pytorch_over_five_steps_on_every_isa() {
    for file in golden_files("optim_") {
        for isa in Isa::available() {
            check_file(&file, Some(isa));
        }
    }
}
