//! Batch normalization (PyTorch's `BatchNorm1d/2d`): training forward, inference forward
//! and backward, each also fused with a following ReLU; NCHW or NHWC; scalar, `wide`
//! (neon) and AVX2 paths chosen by [`Isa`]; threads over work items by [`Parallelism`].
//!
//! The semantics and argument order are those of the f64 reference
//! ([`crate::reference::batch_norm_forward_training`] and its siblings), with a trailing
//! `par`; the `_on` twins take the [`Isa`] first.
//!
//! # ReLU fusion
//!
//! `batch_norm_relu_*` compute y = max(BN(x), 0) (NaN gives 0, as the element-wise ReLU
//! does). Their backward takes that y and uses g = dy where y > 0 (else 0) in place of
//! dy, read on the fly: it equals ReLU's backward followed by [`batch_norm_backward`],
//! without a masked-dy temporary.
//!
//! # Numerics
//!
//! Statistics: each block of at most 4096 values of one channel (a run of an NCHW plane)
//! or of 16384 values of whole rows (NHWC) is summed twice while it is in cache — once for
//! its f32 mean, then Σd and Σd² of d = x − that mean — and the blocks are merged in f64
//! with Chan's update in a fixed order (`moments.rs`). The shift makes the variance free
//! of cancellation however far the data lies from zero (mean 1e4, std 1 normalizes to
//! f32 accuracy), at the cost of a second read from L1/L2, not from memory. The batch
//! mean is kept as two f32 (mean_hi + mean_lo) when normalizing, y = ((x − mean_hi) −
//! mean_lo)·scale + beta, so that y does not inherit the rounding of the mean.
//!
//! Inference is one pass: per channel, scale = gamma/√(running_var + eps) (in f64) and
//! y = (x − running_mean)·scale + beta — the mean subtracted before scaling rather than
//! folded into the shift, which costs one subtraction in a memory-bound loop and keeps
//! data far from zero accurate.
//!
//! The backward makes two passes: Σg and Σg·(x − saved_mean) per channel (f32 per block,
//! f64 across blocks), then dx = a·g + b·(x − saved_mean) + c with per-channel a, b, c
//! from the reference's formula.
//!
//! # Threads and determinism
//!
//! Every pass sweeps memory in order (measured: walking NCHW channel by channel, one
//! 676-byte plane per 43 KB stride, defeated the prefetchers and cost 1.5× in the
//! backward). Threads take fixed groups of consecutive NCHW planes or fixed blocks of
//! NHWC rows; each group writes its own per-plane or per-block partial sums, which are
//! then merged per channel in memory order. The split depends on the shape alone, so
//! results are bitwise identical for every thread count.

mod backward;
mod desc;
mod dispatch;
mod forward;
mod kernel;
mod moments;
mod plan;

pub use desc::BatchNormDesc;

use crate::arch::Isa;
use crate::error::{check_exact, Result};
use crate::parallel::Parallelism;
use backward::Backward;
use forward::{Inference, Training};

/// Checks the ISA, the parallelism, the descriptor and the slice lengths.
fn check_call(
    isa: Isa,
    desc: &BatchNormDesc,
    par: Parallelism,
    activations: &[(&'static str, usize)],
    per_channel: &[(&'static str, usize)],
) -> Result<()> {
    isa.check_available()?;
    par.validate()?;
    desc.check_lengths(activations, per_channel)
}

fn training_on(
    isa: Isa,
    desc: &BatchNormDesc,
    t: Training<'_>,
    relu: bool,
    par: Parallelism,
) -> Result<()> {
    check_call(
        isa,
        desc,
        par,
        &[("batch-norm x", t.x.len()), ("batch-norm y", t.y.len())],
        &[
            ("batch-norm gamma", t.gamma.len()),
            ("batch-norm beta", t.beta.len()),
            ("batch-norm running_mean", t.running_mean.len()),
            ("batch-norm running_var", t.running_var.len()),
            ("batch-norm saved_mean", t.saved_mean.len()),
            ("batch-norm saved_inv_std", t.saved_inv_std.len()),
        ],
    )?;
    desc.check_training(t.momentum)?;
    forward::training(isa, desc, t, relu, par);
    Ok(())
}

/// Training-mode forward on the process's ISA path ([`Isa::selected`]): normalizes each
/// channel with the batch mean and biased variance, updates the running statistics as
/// PyTorch does (momentum, unbiased variance) and writes the batch mean and
/// 1/√(var + eps) to `saved_mean` and `saved_inv_std` for [`batch_norm_backward`].
///
/// Errors: invalid `desc`; non-finite `momentum`; fewer than 2 values per channel; `x`,
/// `y` not `desc.len()` long; a per-channel slice not `desc.channels` long;
/// `Threads(0)`.
// Flat like the reference's (PyTorch's `native_batch_norm`), plus `par`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_training(
    desc: &BatchNormDesc,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    momentum: f32,
    running_mean: &mut [f32],
    running_var: &mut [f32],
    y: &mut [f32],
    saved_mean: &mut [f32],
    saved_inv_std: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    batch_norm_forward_training_on(
        Isa::selected()?,
        desc,
        x,
        gamma,
        beta,
        momentum,
        running_mean,
        running_var,
        y,
        saved_mean,
        saved_inv_std,
        par,
    )
}

/// [`batch_norm_forward_training`] on an explicit ISA path (an error if this CPU cannot
/// run it).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_training_on(
    isa: Isa,
    desc: &BatchNormDesc,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    momentum: f32,
    running_mean: &mut [f32],
    running_var: &mut [f32],
    y: &mut [f32],
    saved_mean: &mut [f32],
    saved_inv_std: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    let t = Training {
        x,
        gamma,
        beta,
        momentum,
        running_mean,
        running_var,
        y,
        saved_mean,
        saved_inv_std,
    };
    training_on(isa, desc, t, false, par)
}

/// [`batch_norm_forward_training`] followed by ReLU: y = max(BN(x), 0). The saved and
/// running statistics are those of the batch norm. Errors as the unfused call.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_relu_forward_training(
    desc: &BatchNormDesc,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    momentum: f32,
    running_mean: &mut [f32],
    running_var: &mut [f32],
    y: &mut [f32],
    saved_mean: &mut [f32],
    saved_inv_std: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    batch_norm_relu_forward_training_on(
        Isa::selected()?,
        desc,
        x,
        gamma,
        beta,
        momentum,
        running_mean,
        running_var,
        y,
        saved_mean,
        saved_inv_std,
        par,
    )
}

/// [`batch_norm_relu_forward_training`] on an explicit ISA path.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_relu_forward_training_on(
    isa: Isa,
    desc: &BatchNormDesc,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    momentum: f32,
    running_mean: &mut [f32],
    running_var: &mut [f32],
    y: &mut [f32],
    saved_mean: &mut [f32],
    saved_inv_std: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    let t = Training {
        x,
        gamma,
        beta,
        momentum,
        running_mean,
        running_var,
        y,
        saved_mean,
        saved_inv_std,
    };
    training_on(isa, desc, t, true, par)
}

fn inference_on(
    isa: Isa,
    desc: &BatchNormDesc,
    t: Inference<'_>,
    relu: bool,
    par: Parallelism,
) -> Result<()> {
    check_call(
        isa,
        desc,
        par,
        &[("batch-norm x", t.x.len()), ("batch-norm y", t.y.len())],
        &[
            ("batch-norm gamma", t.gamma.len()),
            ("batch-norm beta", t.beta.len()),
            ("batch-norm running_mean", t.running_mean.len()),
            ("batch-norm running_var", t.running_var.len()),
        ],
    )?;
    forward::inference(isa, desc, t, relu, par);
    Ok(())
}

/// Inference-mode forward on the process's ISA path, one pass:
/// y = (x − running_mean)·gamma/√(running_var + eps) + beta.
///
/// Errors: invalid `desc`; `x`, `y` not `desc.len()` long; a per-channel slice not
/// `desc.channels` long; `Threads(0)`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_inference(
    desc: &BatchNormDesc,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    batch_norm_forward_inference_on(
        Isa::selected()?,
        desc,
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        y,
        par,
    )
}

/// [`batch_norm_forward_inference`] on an explicit ISA path.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_inference_on(
    isa: Isa,
    desc: &BatchNormDesc,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    let t = Inference {
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        y,
    };
    inference_on(isa, desc, t, false, par)
}

/// [`batch_norm_forward_inference`] followed by ReLU, on the process's ISA path.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_relu_forward_inference(
    desc: &BatchNormDesc,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    batch_norm_relu_forward_inference_on(
        Isa::selected()?,
        desc,
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        y,
        par,
    )
}

/// [`batch_norm_relu_forward_inference`] on an explicit ISA path.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_relu_forward_inference_on(
    isa: Isa,
    desc: &BatchNormDesc,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    let t = Inference {
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        y,
    };
    inference_on(isa, desc, t, true, par)
}

fn backward_on(isa: Isa, desc: &BatchNormDesc, t: Backward<'_>, par: Parallelism) -> Result<()> {
    check_call(
        isa,
        desc,
        par,
        &[
            ("batch-norm x", t.x.len()),
            ("batch-norm dy", t.dy.len()),
            ("batch-norm dx", t.dx.len()),
        ],
        &[
            ("batch-norm gamma", t.gamma.len()),
            ("batch-norm saved_mean", t.saved_mean.len()),
            ("batch-norm saved_inv_std", t.saved_inv_std.len()),
            ("batch-norm dgamma", t.dgamma.len()),
            ("batch-norm dbeta", t.dbeta.len()),
        ],
    )?;
    if let Some(y) = t.y {
        check_exact("batch-norm y", desc.len(), y.len())?;
    }
    backward::backward(isa, desc, t, par);
    Ok(())
}

/// Backward of [`batch_norm_forward_training`] from its saved statistics, on the
/// process's ISA path, in two passes: with x̂ = (x − saved_mean)·saved_inv_std and m
/// values per channel, dbeta = Σ dy, dgamma = Σ dy·x̂ and
/// dx = gamma·saved_inv_std·(dy − dbeta/m − x̂·dgamma/m). All three are overwritten.
///
/// Errors: invalid `desc`; `x`, `dy`, `dx` not `desc.len()` long; a per-channel slice
/// not `desc.channels` long; `Threads(0)`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    desc: &BatchNormDesc,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    saved_mean: &[f32],
    saved_inv_std: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    batch_norm_backward_on(
        Isa::selected()?,
        desc,
        x,
        dy,
        gamma,
        saved_mean,
        saved_inv_std,
        dx,
        dgamma,
        dbeta,
        par,
    )
}

/// [`batch_norm_backward`] on an explicit ISA path.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward_on(
    isa: Isa,
    desc: &BatchNormDesc,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    saved_mean: &[f32],
    saved_inv_std: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    let t = Backward {
        x,
        y: None,
        dy,
        gamma,
        saved_mean,
        saved_inv_std,
        dx,
        dgamma,
        dbeta,
    };
    backward_on(isa, desc, t, par)
}

/// Backward of [`batch_norm_relu_forward_training`], on the process's ISA path: `y` is
/// that forward's output, and g = dy where y > 0 (else 0) replaces dy in
/// [`batch_norm_backward`]'s formulas, read on the fly.
///
/// Errors: those of [`batch_norm_backward`], and `y` not `desc.len()` long.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_relu_backward(
    desc: &BatchNormDesc,
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    gamma: &[f32],
    saved_mean: &[f32],
    saved_inv_std: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    batch_norm_relu_backward_on(
        Isa::selected()?,
        desc,
        x,
        y,
        dy,
        gamma,
        saved_mean,
        saved_inv_std,
        dx,
        dgamma,
        dbeta,
        par,
    )
}

/// [`batch_norm_relu_backward`] on an explicit ISA path.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_relu_backward_on(
    isa: Isa,
    desc: &BatchNormDesc,
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    gamma: &[f32],
    saved_mean: &[f32],
    saved_inv_std: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    let t = Backward {
        x,
        y: Some(y),
        dy,
        gamma,
        saved_mean,
        saved_inv_std,
        dx,
        dgamma,
        dbeta,
    };
    backward_on(isa, desc, t, par)
}
