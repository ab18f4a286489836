//! Parameter updates of the optimizers over flat slices, with PyTorch's semantics (the
//! twins of [`crate::reference`]'s `*_step`, same arguments, plus [`Parallelism`]).
//!
//! Each step makes one pass over memory: it reads the parameter, the gradient and the
//! state and writes the parameter and the state, element by element in f32 (FMA where
//! the path has it). Per-step scalars (Adam's bias corrections, Adagrad's decayed
//! rate) are computed once in f64. At t = 1 the state is initialized as PyTorch does
//! and not read (so it may hold anything, NaN included). Threads take fixed chunks of
//! 16 Ki elements: the result is bitwise the same for every thread count.
//!
//! No streaming stores: every line written was read just before, so the store finds it
//! in cache and costs no extra read, and bypassing the cache would only evict it early.
//! Denormal states are computed, not flushed (as PyTorch does): a state that decays
//! toward zero under zero gradients can slow a step on cores with denormal assists.
//!
//! Accuracy: each output is within a few f32 ulp of the f64 reference, relative to the
//! magnitudes of the terms that make it (`kernels/tests/optim.rs` states the bounds).

mod adagrad;
mod adam;
pub(crate) mod hyper;
mod rmsprop;
mod sgd;
mod sweep;

pub use hyper::{Adagrad, Adam, RmsProp, Sgd, WeightDecay};

use crate::arch::Isa;
use crate::error::{check_exact, Result};
use crate::parallel::{for_each_item, Parallelism};
use hyper::{check_state, check_step};
use sweep::{cut, items, ITEM};

fn check_call(isa: Isa, par: Parallelism, t: u64) -> Result<()> {
    isa.check_available()?;
    par.validate()?;
    check_step(t)
}

/// One `torch.optim.SGD` step on the process's ISA path: g ← grad + weight_decay·p;
/// with momentum μ, buf ← g at t = 1 and μ·buf + (1 − dampening)·g after, then
/// g ← g + μ·buf (Nesterov) or g ← buf; finally p ← p − lr·g.
///
/// `momentum_buf` must be `param.len()` long when `h.momentum != 0`; otherwise it may be
/// empty and is not touched.
///
/// Errors: invalid hyper-parameters; `t == 0`; `grad` or a used buffer not the length
/// of `param`; `Threads(0)`.
pub fn sgd_step(
    h: &Sgd,
    t: u64,
    param: &mut [f32],
    grad: &[f32],
    momentum_buf: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    sgd_step_on(Isa::selected()?, h, t, param, grad, momentum_buf, par)
}

/// [`sgd_step`] on an explicit ISA path (an error if this CPU cannot run it).
pub fn sgd_step_on(
    isa: Isa,
    h: &Sgd,
    t: u64,
    param: &mut [f32],
    grad: &[f32],
    momentum_buf: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    check_call(isa, par, t)?;
    h.validate()?;
    let len = param.len();
    check_exact("sgd grad", len, grad.len())?;
    let c = sgd::SgdStep::new(h, t);
    check_state(
        "sgd momentum_buf",
        c.uses_momentum(),
        len,
        momentum_buf.len(),
    )?;
    let count = items(len);
    let work = param
        .chunks_mut(ITEM)
        .zip(grad.chunks(ITEM))
        .zip(cut(momentum_buf, count));
    for_each_item(par, work, |_, ((p, g), buf)| sgd::sgd(isa, &c, p, g, buf));
    Ok(())
}

/// One `torch.optim.Adam` (`h.decay == L2`) or `torch.optim.AdamW` (`Decoupled`) step on
/// the process's ISA path: weight decay (g ← g + wd·p, or p ← p·(1 − lr·wd)), then
/// m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g² and
/// p ← p − lr/(1 − β1^t) · m / (√v/√(1 − β2^t) + eps).
/// `exp_avg` (m) and `exp_avg_sq` (v) start from zero at t = 1.
///
/// Errors: invalid hyper-parameters; `t == 0`; `grad`, `exp_avg` or `exp_avg_sq` not
/// the length of `param`; `Threads(0)`.
pub fn adam_step(
    h: &Adam,
    t: u64,
    param: &mut [f32],
    grad: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    adam_step_on(
        Isa::selected()?,
        h,
        t,
        param,
        grad,
        exp_avg,
        exp_avg_sq,
        par,
    )
}

/// [`adam_step`] on an explicit ISA path.
#[allow(clippy::too_many_arguments)]
pub fn adam_step_on(
    isa: Isa,
    h: &Adam,
    t: u64,
    param: &mut [f32],
    grad: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    check_call(isa, par, t)?;
    h.validate()?;
    let len = param.len();
    check_exact("adam grad", len, grad.len())?;
    check_exact("adam exp_avg", len, exp_avg.len())?;
    check_exact("adam exp_avg_sq", len, exp_avg_sq.len())?;
    let c = adam::AdamStep::new(h, t);
    let work = param
        .chunks_mut(ITEM)
        .zip(grad.chunks(ITEM))
        .zip(exp_avg.chunks_mut(ITEM))
        .zip(exp_avg_sq.chunks_mut(ITEM));
    for_each_item(par, work, |_, (((p, g), m), v)| {
        adam::adam(isa, &c, p, g, m, v)
    });
    Ok(())
}

/// One `torch.optim.RMSprop` step on the process's ISA path: g ← grad + weight_decay·p,
/// square_avg ← α·square_avg + (1 − α)·g²; centered: grad_avg ← α·grad_avg + (1 − α)·g
/// and avg = √(square_avg − grad_avg²) + eps, else avg = √square_avg + eps; with
/// momentum μ > 0, buf ← μ·buf + g/avg and p ← p − lr·buf, else p ← p − lr·g/avg.
/// The state starts from zero at t = 1.
///
/// `grad_avg` must be `param.len()` long when `h.centered`, `momentum_buf` when
/// `h.momentum > 0`; otherwise they may be empty and are not touched.
///
/// Errors: invalid hyper-parameters; `t == 0`; `grad`, `square_avg` or a used buffer
/// not the length of `param`; `Threads(0)`.
#[allow(clippy::too_many_arguments)]
pub fn rmsprop_step(
    h: &RmsProp,
    t: u64,
    param: &mut [f32],
    grad: &[f32],
    square_avg: &mut [f32],
    grad_avg: &mut [f32],
    momentum_buf: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    rmsprop_step_on(
        Isa::selected()?,
        h,
        t,
        param,
        grad,
        square_avg,
        grad_avg,
        momentum_buf,
        par,
    )
}

/// [`rmsprop_step`] on an explicit ISA path.
#[allow(clippy::too_many_arguments)]
pub fn rmsprop_step_on(
    isa: Isa,
    h: &RmsProp,
    t: u64,
    param: &mut [f32],
    grad: &[f32],
    square_avg: &mut [f32],
    grad_avg: &mut [f32],
    momentum_buf: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    check_call(isa, par, t)?;
    h.validate()?;
    let len = param.len();
    check_exact("rmsprop grad", len, grad.len())?;
    check_exact("rmsprop square_avg", len, square_avg.len())?;
    check_state("rmsprop grad_avg", h.centered, len, grad_avg.len())?;
    let c = rmsprop::RmsPropStep::new(h, t);
    check_state(
        "rmsprop momentum_buf",
        c.uses_momentum(),
        len,
        momentum_buf.len(),
    )?;
    let count = items(len);
    let work = param
        .chunks_mut(ITEM)
        .zip(grad.chunks(ITEM))
        .zip(square_avg.chunks_mut(ITEM))
        .zip(cut(grad_avg, count))
        .zip(cut(momentum_buf, count));
    for_each_item(par, work, |_, ((((p, g), sq), mean), buf)| {
        rmsprop::rmsprop(isa, &c, p, g, sq, mean, buf)
    });
    Ok(())
}

/// One `torch.optim.Adagrad` step on the process's ISA path:
/// clr = lr/(1 + (t − 1)·lr_decay), g ← grad + weight_decay·p, sum ← sum + g²,
/// p ← p − clr·g/(√sum + eps). `sum` starts from `initial_accumulator_value` at t = 1.
///
/// Errors: invalid hyper-parameters; `t == 0`; `grad` or `sum` not the length of
/// `param`; `Threads(0)`.
pub fn adagrad_step(
    h: &Adagrad,
    t: u64,
    param: &mut [f32],
    grad: &[f32],
    sum: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    adagrad_step_on(Isa::selected()?, h, t, param, grad, sum, par)
}

/// [`adagrad_step`] on an explicit ISA path.
pub fn adagrad_step_on(
    isa: Isa,
    h: &Adagrad,
    t: u64,
    param: &mut [f32],
    grad: &[f32],
    sum: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    check_call(isa, par, t)?;
    h.validate()?;
    let len = param.len();
    check_exact("adagrad grad", len, grad.len())?;
    check_exact("adagrad sum", len, sum.len())?;
    let c = adagrad::AdagradStep::new(h, t);
    let work = param
        .chunks_mut(ITEM)
        .zip(grad.chunks(ITEM))
        .zip(sum.chunks_mut(ITEM));
    for_each_item(par, work, |_, ((p, g), s)| {
        adagrad::adagrad(isa, &c, p, g, s)
    });
    Ok(())
}
