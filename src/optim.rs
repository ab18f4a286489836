//! Optimizers over a graph's parameters: the update kernels plus what wraps them in
//! PyTorch (learning-rate schedules, gradient clipping, L1 penalty, early stopping).

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::param::Param;
use axonal_kernels::optim::{adagrad_step, adam_step, rmsprop_step, sgd_step};
use axonal_kernels::optim::{Adagrad, Adam, RmsProp, Sgd};
use axonal_kernels::Parallelism;

/// The update rule and its hyper-parameters (`lr` is the base learning rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    Sgd(Sgd),
    Adam(Adam),
    RmsProp(RmsProp),
    Adagrad(Adagrad),
}

impl Method {
    fn base_lr(&self) -> f32 {
        match self {
            Method::Sgd(h) => h.lr,
            Method::Adam(h) => h.lr,
            Method::RmsProp(h) => h.lr,
            Method::Adagrad(h) => h.lr,
        }
    }

    fn with_lr(mut self, lr: f32) -> Method {
        match &mut self {
            Method::Sgd(h) => h.lr = lr,
            Method::Adam(h) => h.lr = lr,
            Method::RmsProp(h) => h.lr = lr,
            Method::Adagrad(h) => h.lr = lr,
        }
        self
    }

    /// State buffers per parameter (momentum, moments, averages).
    fn state_buffers(&self) -> usize {
        match self {
            Method::Sgd(h) if h.momentum == 0.0 => 0,
            Method::Sgd(_) | Method::Adagrad(_) => 1,
            Method::Adam(_) => 2,
            Method::RmsProp(_) => 3,
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Method::Sgd(h) => h.validate()?,
            Method::Adam(h) => h.validate()?,
            Method::RmsProp(h) => h.validate()?,
            Method::Adagrad(h) => h.validate()?,
        }
        Ok(())
    }
}

/// How the learning rate changes with the step: a linear warm-up from 0, then a decay.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Schedule {
    /// Steps over which the rate rises linearly to the base rate (0: none).
    pub warmup_steps: u64,
    pub decay: Decay,
}

/// The decay after warm-up, in steps since the warm-up ended.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Decay {
    #[default]
    Constant,
    /// PyTorch's `StepLR`: multiply by `gamma` every `every` steps.
    Step { every: u64, gamma: f32 },
    /// PyTorch's `CosineAnnealingLR`: from the base rate to `min_lr` over `total` steps.
    Cosine { total: u64, min_lr: f32 },
}

impl Schedule {
    /// The rate at 1-based step `t` for a base rate `lr`.
    pub fn lr_at(&self, lr: f32, t: u64) -> f32 {
        if t <= self.warmup_steps {
            return lr * t as f32 / self.warmup_steps as f32;
        }
        let s = t - 1 - self.warmup_steps;
        match self.decay {
            Decay::Constant => lr,
            Decay::Step { every, gamma } => lr * gamma.powi((s / every.max(1)) as i32),
            Decay::Cosine { total, min_lr } => {
                let progress = (s.min(total) as f64) / total.max(1) as f64;
                let cos = (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0;
                (f64::from(min_lr) + f64::from(lr - min_lr) * cos) as f32
            }
        }
    }
}

/// Updates a graph's parameters from their gradients, keeping the per-parameter state.
pub struct Optimizer {
    method: Method,
    schedule: Schedule,
    /// Rescale all gradients together when their global L2 norm exceeds this.
    clip_norm: Option<f32>,
    /// L1 penalty: g ← g + l1·sign(p).
    l1: f32,
    /// Completed steps (PyTorch's `state["step"]`).
    t: u64,
    state: Vec<Vec<Vec<f32>>>,
}

impl Optimizer {
    pub fn new(method: Method) -> Result<Optimizer> {
        method.validate()?;
        Ok(Optimizer {
            method,
            schedule: Schedule::default(),
            clip_norm: None,
            l1: 0.0,
            t: 0,
            state: Vec::new(),
        })
    }

    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Clips the gradients' global norm to `max_norm` (PyTorch's `clip_grad_norm_`).
    pub fn clip_norm(mut self, max_norm: f32) -> Result<Self> {
        if !(max_norm > 0.0 && max_norm.is_finite()) {
            return Err(Error::invalid(
                "clip_norm",
                format!("must be positive, got {max_norm}"),
            ));
        }
        self.clip_norm = Some(max_norm);
        Ok(self)
    }

    pub fn l1(mut self, l1: f32) -> Result<Self> {
        if !(l1 >= 0.0 && l1.is_finite()) {
            return Err(Error::invalid("l1", format!("must be ≥ 0, got {l1}")));
        }
        self.l1 = l1;
        Ok(self)
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// The learning rate the next step uses.
    pub fn lr(&self) -> f32 {
        self.schedule.lr_at(self.method.base_lr(), self.t + 1)
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The per-parameter state buffers (for checkpoints), in graph order.
    pub fn state_mut(&mut self) -> &mut Vec<Vec<Vec<f32>>> {
        &mut self.state
    }

    /// State buffers kept per parameter by this method.
    pub fn state_buffers(&self) -> usize {
        self.method.state_buffers()
    }

    /// Restores the step count (for checkpoints).
    pub fn set_steps(&mut self, t: u64) {
        self.t = t;
    }

    /// One update of every parameter of `graph` from its gradient.
    pub fn step(&mut self, graph: &mut Graph, par: Parallelism) -> Result<()> {
        let t = self.t + 1;
        let method = self.method.with_lr(self.lr());
        let scale = match self.clip_norm {
            Some(max) => clip_scale(graph, max),
            None => 1.0,
        };
        let (l1, buffers) = (self.l1, method.state_buffers());
        let state = &mut self.state;
        let mut index = 0;
        let mut result = Ok(());
        graph.visit_params(&mut |p| {
            if result.is_err() {
                return;
            }
            if state.len() <= index {
                state.push(vec![vec![0.0; p.len()]; buffers]);
            }
            result = update(&method, t, p, &mut state[index], scale, l1, par);
            index += 1;
        });
        result?;
        self.t = t;
        Ok(())
    }
}

/// The factor that brings the global gradient norm down to `max` (1 if it is below).
fn clip_scale(graph: &mut Graph, max: f32) -> f32 {
    let mut sum = 0.0f64;
    graph.visit_params(&mut |p| {
        sum += p
            .grad
            .iter()
            .map(|&g| f64::from(g) * f64::from(g))
            .sum::<f64>();
    });
    let norm = sum.sqrt();
    // PyTorch's clip_grad_norm_: max / (norm + 1e-6), applied only when below 1.
    let factor = f64::from(max) / (norm + 1e-6);
    if factor < 1.0 {
        factor as f32
    } else {
        1.0
    }
}

fn update(
    method: &Method,
    t: u64,
    p: &mut Param,
    state: &mut [Vec<f32>],
    scale: f32,
    l1: f32,
    par: Parallelism,
) -> Result<()> {
    if scale != 1.0 || l1 != 0.0 {
        for (g, &v) in p.grad.iter_mut().zip(&p.value) {
            *g = *g * scale + l1 * sign(v);
        }
    }
    let (param, grad) = (&mut p.value, &p.grad);
    match (method, state) {
        (Method::Sgd(h), []) => sgd_step(h, t, param, grad, &mut [], par)?,
        (Method::Sgd(h), [buf]) => sgd_step(h, t, param, grad, buf, par)?,
        (Method::Adam(h), [m, v]) => adam_step(h, t, param, grad, m, v, par)?,
        (Method::RmsProp(h), [sq, avg, buf]) => rmsprop_step(h, t, param, grad, sq, avg, buf, par)?,
        (Method::Adagrad(h), [sum]) => adagrad_step(h, t, param, grad, sum, par)?,
        _ => unreachable!("state buffers are allocated per method"),
    }
    Ok(())
}

fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Stops training when a validation metric has not improved for `patience` epochs.
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    patience: usize,
    /// Whether larger values of the metric are better (accuracy) or smaller (loss).
    maximize: bool,
    best: Option<f64>,
    bad_epochs: usize,
}

impl EarlyStopping {
    pub fn new(patience: usize, maximize: bool) -> EarlyStopping {
        EarlyStopping {
            patience,
            maximize,
            best: None,
            bad_epochs: 0,
        }
    }

    /// Records an epoch's metric; returns whether training should stop.
    pub fn update(&mut self, metric: f64) -> bool {
        let better = match self.best {
            None => true,
            Some(best) => (self.maximize && metric > best) || (!self.maximize && metric < best),
        };
        if better {
            self.best = Some(metric);
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        self.bad_epochs > self.patience
    }

    pub fn best(&self) -> Option<f64> {
        self.best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_pytorch() {
        let warm = Schedule {
            warmup_steps: 4,
            decay: Decay::Constant,
        };
        assert_eq!(warm.lr_at(1.0, 1), 0.25);
        assert_eq!(warm.lr_at(1.0, 9), 1.0);
        let step = Schedule {
            warmup_steps: 0,
            decay: Decay::Step {
                every: 2,
                gamma: 0.5,
            },
        };
        assert_eq!(
            [1, 2, 3, 5].map(|t| step.lr_at(1.0, t)),
            [1.0, 1.0, 0.5, 0.25]
        );
        let cos = Schedule {
            warmup_steps: 0,
            decay: Decay::Cosine {
                total: 10,
                min_lr: 0.0,
            },
        };
        assert_eq!(cos.lr_at(2.0, 1), 2.0);
        assert!((cos.lr_at(2.0, 6) - 1.0).abs() < 1e-6);
        assert!(cos.lr_at(2.0, 11).abs() < 1e-6);
    }

    #[test]
    fn early_stopping_waits_for_patience() {
        let mut stop = EarlyStopping::new(1, true);
        assert!(!stop.update(0.5));
        assert!(!stop.update(0.4));
        assert!(stop.update(0.45));
        assert_eq!(stop.best(), Some(0.5));
    }
}
