//! Hyper-parameters of the optimizers, with PyTorch's names, defaults and semantics.
//!
//! Every update takes the 1-based step number `t` (PyTorch's `state["step"]` after its
//! increment) so that bias corrections and first-step rules match PyTorch exactly.

use crate::error::{check_exact, check_finite, KernelError, Result};

/// `torch.optim.SGD`: with momentum μ, buf ← g on the first step, then
/// buf ← μ·buf + (1 − dampening)·g; the step uses g + μ·buf (Nesterov) or buf.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    pub dampening: f32,
    /// L2 penalty added to the gradient: g ← g + weight_decay·p.
    pub weight_decay: f32,
    pub nesterov: bool,
}

impl Sgd {
    /// Plain SGD: no momentum, no weight decay.
    pub fn new(lr: f32) -> Self {
        Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }

    /// Checks the ranges PyTorch checks (Nesterov needs momentum and no dampening).
    pub fn validate(&self) -> Result<()> {
        non_negative("sgd lr", self.lr)?;
        non_negative("sgd momentum", self.momentum)?;
        check_finite("sgd dampening", self.dampening)?;
        non_negative("sgd weight_decay", self.weight_decay)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(KernelError::invalid(
                "sgd nesterov",
                "requires momentum > 0 and dampening = 0",
            ));
        }
        Ok(())
    }
}

/// How Adam applies weight decay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightDecay {
    /// `torch.optim.Adam`: g ← g + weight_decay·p before the moments.
    #[default]
    L2,
    /// `torch.optim.AdamW`: p ← p·(1 − lr·weight_decay) before the update.
    Decoupled,
}

/// `torch.optim.Adam` and `torch.optim.AdamW` (without amsgrad).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decay: WeightDecay,
}

impl Adam {
    /// `Adam(lr)` with PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn new(lr: f32) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decay: WeightDecay::L2,
        }
    }

    /// `AdamW(lr, weight_decay)` with PyTorch's other defaults.
    pub fn adamw(lr: f32, weight_decay: f32) -> Self {
        Adam {
            weight_decay,
            decay: WeightDecay::Decoupled,
            ..Adam::new(lr)
        }
    }

    /// Checks the ranges PyTorch checks.
    pub fn validate(&self) -> Result<()> {
        non_negative("adam lr", self.lr)?;
        non_negative("adam eps", self.eps)?;
        non_negative("adam weight_decay", self.weight_decay)?;
        for (what, beta) in [("adam beta1", self.beta1), ("adam beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(KernelError::invalid(
                    what,
                    format!("must be in [0, 1), got {beta}"),
                ));
            }
        }
        Ok(())
    }
}

/// `torch.optim.RMSprop`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsProp {
    pub lr: f32,
    /// Smoothing constant of the squared-gradient average.
    pub alpha: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub momentum: f32,
    /// Normalize by the variance estimate (mean of g² minus the square of the mean of g).
    pub centered: bool,
}

impl RmsProp {
    /// `RMSprop(lr)` with PyTorch's defaults: alpha 0.99, eps 1e-8.
    pub fn new(lr: f32) -> Self {
        RmsProp {
            lr,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }

    /// Checks the ranges PyTorch checks.
    pub fn validate(&self) -> Result<()> {
        non_negative("rmsprop lr", self.lr)?;
        non_negative("rmsprop alpha", self.alpha)?;
        non_negative("rmsprop eps", self.eps)?;
        non_negative("rmsprop weight_decay", self.weight_decay)?;
        non_negative("rmsprop momentum", self.momentum)
    }
}

/// `torch.optim.Adagrad`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adagrad {
    pub lr: f32,
    /// The step size at step t is lr / (1 + (t − 1)·lr_decay).
    pub lr_decay: f32,
    pub weight_decay: f32,
    /// Starting value of the squared-gradient sum.
    pub initial_accumulator_value: f32,
    pub eps: f32,
}

impl Adagrad {
    /// `Adagrad(lr)` with PyTorch's defaults: eps 1e-10, nothing else.
    pub fn new(lr: f32) -> Self {
        Adagrad {
            lr,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
        }
    }

    /// Checks the ranges PyTorch checks.
    pub fn validate(&self) -> Result<()> {
        non_negative("adagrad lr", self.lr)?;
        non_negative("adagrad lr_decay", self.lr_decay)?;
        non_negative("adagrad weight_decay", self.weight_decay)?;
        non_negative(
            "adagrad initial_accumulator_value",
            self.initial_accumulator_value,
        )?;
        non_negative("adagrad eps", self.eps)
    }
}

fn non_negative(what: &'static str, value: f32) -> Result<()> {
    check_finite(what, value)?;
    if value < 0.0 {
        return Err(KernelError::invalid(
            what,
            format!("must be >= 0, got {value}"),
        ));
    }
    Ok(())
}

/// Checks that the step number is 1-based.
pub(crate) fn check_step(t: u64) -> Result<()> {
    if t == 0 {
        return Err(KernelError::invalid(
            "optimizer step t",
            "is 1-based (PyTorch's state[\"step\"] after its increment), got 0",
        ));
    }
    Ok(())
}

/// Checks a state buffer: `len` long when the optimizer uses it, else empty or `len`
/// long (and then left untouched).
pub(crate) fn check_state(what: &'static str, used: bool, len: usize, got: usize) -> Result<()> {
    if used || got != 0 {
        check_exact(what, len, got)?;
    }
    Ok(())
}
