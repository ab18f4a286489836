//! Reference optimizer steps with PyTorch's semantics (`torch.optim` without amsgrad or
//! maximize), one element at a time.
//!
//! Each step takes the 1-based step number `t`. At `t = 1` the state is initialized
//! exactly as PyTorch initializes it on its first step (zeros; SGD's momentum buffer to
//! the gradient; Adagrad's sum to `initial_accumulator_value`), whatever the state
//! buffers hold, so a caller need not clear them. Every element's update is computed in
//! f64 from the f32 parameter, gradient and state; the new parameter and state are
//! stored as f32.

use crate::error::{check_exact, Result};
use crate::optim::hyper::{check_state, check_step};
use crate::optim::{Adagrad, Adam, RmsProp, Sgd, WeightDecay};

/// One `torch.optim.SGD` step: g ← grad + weight_decay·p; with momentum μ,
/// buf ← g at t = 1 and μ·buf + (1 − dampening)·g after, then g ← g + μ·buf (Nesterov)
/// or g ← buf; finally p ← p − lr·g.
///
/// `momentum_buf` must be `param.len()` long when `h.momentum != 0`; otherwise it may be
/// empty and is not touched.
///
/// Errors: invalid hyper-parameters; `t == 0`; `grad` or a used buffer not the length
/// of `param`.
pub fn sgd_step(
    h: &Sgd,
    t: u64,
    param: &mut [f32],
    grad: &[f32],
    momentum_buf: &mut [f32],
) -> Result<()> {
    h.validate()?;
    check_step(t)?;
    let len = param.len();
    check_exact("sgd grad", len, grad.len())?;
    let uses_momentum = h.momentum != 0.0;
    check_state("sgd momentum_buf", uses_momentum, len, momentum_buf.len())?;
    let lr = f64::from(h.lr);
    let momentum = f64::from(h.momentum);
    let dampening = f64::from(h.dampening);
    let weight_decay = f64::from(h.weight_decay);
    for i in 0..len {
        let p = f64::from(param[i]);
        let mut g = f64::from(grad[i]);
        if weight_decay != 0.0 {
            g += weight_decay * p;
        }
        if uses_momentum {
            let buf = if t == 1 {
                g
            } else {
                momentum * f64::from(momentum_buf[i]) + (1.0 - dampening) * g
            };
            momentum_buf[i] = buf as f32;
            g = if h.nesterov { g + momentum * buf } else { buf };
        }
        param[i] = (p - lr * g) as f32;
    }
    Ok(())
}

/// One `torch.optim.Adam` (`h.decay == L2`) or `torch.optim.AdamW` (`Decoupled`) step:
/// weight decay (g ← g + wd·p, or p ← p·(1 − lr·wd)), then
/// m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g² and
/// p ← p − lr/(1 − β1^t) · m / (√v/√(1 − β2^t) + eps).
/// `exp_avg` (m) and `exp_avg_sq` (v) start from zero at t = 1.
///
/// Errors: invalid hyper-parameters; `t == 0`; `grad`, `exp_avg` or `exp_avg_sq` not
/// the length of `param`.
pub fn adam_step(
    h: &Adam,
    t: u64,
    param: &mut [f32],
    grad: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
) -> Result<()> {
    h.validate()?;
    check_step(t)?;
    let len = param.len();
    check_exact("adam grad", len, grad.len())?;
    check_exact("adam exp_avg", len, exp_avg.len())?;
    check_exact("adam exp_avg_sq", len, exp_avg_sq.len())?;
    let lr = f64::from(h.lr);
    let (beta1, beta2) = (f64::from(h.beta1), f64::from(h.beta2));
    let eps = f64::from(h.eps);
    let weight_decay = f64::from(h.weight_decay);
    // t as f64 is exact up to 2^53 steps, far beyond any training run.
    let bias_correction1 = 1.0 - beta1.powf(t as f64);
    let bias_correction2 = 1.0 - beta2.powf(t as f64);
    let step_size = lr / bias_correction1;
    for i in 0..len {
        let mut p = f64::from(param[i]);
        let mut g = f64::from(grad[i]);
        if weight_decay != 0.0 {
            match h.decay {
                WeightDecay::L2 => g += weight_decay * p,
                WeightDecay::Decoupled => p *= 1.0 - lr * weight_decay,
            }
        }
        let (m, v) = if t == 1 {
            (0.0, 0.0)
        } else {
            (f64::from(exp_avg[i]), f64::from(exp_avg_sq[i]))
        };
        let m = beta1 * m + (1.0 - beta1) * g;
        let v = beta2 * v + (1.0 - beta2) * g * g;
        exp_avg[i] = m as f32;
        exp_avg_sq[i] = v as f32;
        let denominator = v.sqrt() / bias_correction2.sqrt() + eps;
        param[i] = (p - step_size * m / denominator) as f32;
    }
    Ok(())
}

/// One `torch.optim.RMSprop` step: g ← grad + weight_decay·p,
/// square_avg ← α·square_avg + (1 − α)·g²; centered: grad_avg ← α·grad_avg + (1 − α)·g
/// and avg = √(square_avg − grad_avg²) + eps, else avg = √square_avg + eps; with
/// momentum μ > 0, buf ← μ·buf + g/avg and p ← p − lr·buf, else p ← p − lr·g/avg.
/// The state starts from zero at t = 1; otherwise the update does not depend on t.
///
/// `grad_avg` must be `param.len()` long when `h.centered`, `momentum_buf` when
/// `h.momentum > 0`; otherwise they may be empty and are not touched.
///
/// Errors: invalid hyper-parameters; `t == 0`; `grad`, `square_avg` or a used buffer
/// not the length of `param`.
pub fn rmsprop_step(
    h: &RmsProp,
    t: u64,
    param: &mut [f32],
    grad: &[f32],
    square_avg: &mut [f32],
    grad_avg: &mut [f32],
    momentum_buf: &mut [f32],
) -> Result<()> {
    h.validate()?;
    check_step(t)?;
    let len = param.len();
    check_exact("rmsprop grad", len, grad.len())?;
    check_exact("rmsprop square_avg", len, square_avg.len())?;
    check_state("rmsprop grad_avg", h.centered, len, grad_avg.len())?;
    let uses_momentum = h.momentum > 0.0;
    check_state(
        "rmsprop momentum_buf",
        uses_momentum,
        len,
        momentum_buf.len(),
    )?;
    let lr = f64::from(h.lr);
    let alpha = f64::from(h.alpha);
    let eps = f64::from(h.eps);
    let weight_decay = f64::from(h.weight_decay);
    let momentum = f64::from(h.momentum);
    // The state before this step: PyTorch's zeros on the first step.
    let state = |buf: &[f32], i: usize| if t == 1 { 0.0 } else { f64::from(buf[i]) };
    for i in 0..len {
        let p = f64::from(param[i]);
        let mut g = f64::from(grad[i]);
        if weight_decay != 0.0 {
            g += weight_decay * p;
        }
        let sq = alpha * state(square_avg, i) + (1.0 - alpha) * g * g;
        square_avg[i] = sq as f32;
        let avg = if h.centered {
            let mean = alpha * state(grad_avg, i) + (1.0 - alpha) * g;
            grad_avg[i] = mean as f32;
            (sq - mean * mean).sqrt() + eps
        } else {
            sq.sqrt() + eps
        };
        let update = if uses_momentum {
            let buf = momentum * state(momentum_buf, i) + g / avg;
            momentum_buf[i] = buf as f32;
            buf
        } else {
            g / avg
        };
        param[i] = (p - lr * update) as f32;
    }
    Ok(())
}

/// One `torch.optim.Adagrad` step: clr = lr/(1 + (t − 1)·lr_decay),
/// g ← grad + weight_decay·p, sum ← sum + g², p ← p − clr·g/(√sum + eps).
/// `sum` starts from `initial_accumulator_value` at t = 1.
///
/// Errors: invalid hyper-parameters; `t == 0`; `grad` or `sum` not the length of
/// `param`.
pub fn adagrad_step(
    h: &Adagrad,
    t: u64,
    param: &mut [f32],
    grad: &[f32],
    sum: &mut [f32],
) -> Result<()> {
    h.validate()?;
    check_step(t)?;
    let len = param.len();
    check_exact("adagrad grad", len, grad.len())?;
    check_exact("adagrad sum", len, sum.len())?;
    let clr = f64::from(h.lr) / (1.0 + (t - 1) as f64 * f64::from(h.lr_decay));
    let eps = f64::from(h.eps);
    let weight_decay = f64::from(h.weight_decay);
    for i in 0..len {
        let p = f64::from(param[i]);
        let mut g = f64::from(grad[i]);
        if weight_decay != 0.0 {
            g += weight_decay * p;
        }
        let previous = if t == 1 {
            f64::from(h.initial_accumulator_value)
        } else {
            f64::from(sum[i])
        };
        let s = previous + g * g;
        sum[i] = s as f32;
        param[i] = (p - clr * g / (s.sqrt() + eps)) as f32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parameters and gradients chosen so that every intermediate is exact in binary.
    const P: [f32; 2] = [1.0, -2.0];
    const G: [f32; 2] = [0.5, 0.25];

    #[test]
    fn sgd_by_hand() {
        let h = Sgd {
            lr: 0.5,
            momentum: 0.5,
            dampening: 0.5,
            weight_decay: 0.5,
            nesterov: false,
        };
        let mut p = P;
        let mut buf = [f32::NAN; 2];
        sgd_step(&h, 1, &mut p, &G, &mut buf).unwrap();
        // g = grad + 0.5·p = [1, -0.75]; buf = g; p -= 0.5·buf.
        assert_eq!(buf, [1.0, -0.75]);
        assert_eq!(p, [0.5, -1.625]);
        sgd_step(&h, 2, &mut p, &G, &mut buf).unwrap();
        // g = [0.75, -0.5625]; buf = 0.5·buf + 0.5·g = [0.875, -0.65625].
        assert_eq!(buf, [0.875, -0.656_25]);
        assert_eq!(p, [0.0625, -1.296_875]);

        let nesterov = Sgd {
            dampening: 0.0,
            nesterov: true,
            ..h
        };
        let mut p = P;
        sgd_step(&nesterov, 1, &mut p, &G, &mut buf).unwrap();
        // g + 0.5·buf with buf = g = [1, -0.75]: [1.5, -1.125].
        assert_eq!(p, [0.25, -1.4375]);

        // Without momentum the buffer may be empty.
        let mut p = P;
        sgd_step(&Sgd::new(2.0), 7, &mut p, &G, &mut []).unwrap();
        assert_eq!(p, [0.0, -2.5]);
    }

    #[test]
    fn adam_by_hand() {
        let h = Adam {
            beta1: 0.5,
            beta2: 0.75,
            eps: 0.0,
            ..Adam::new(0.125)
        };
        let mut p = P;
        let (mut m, mut v) = ([f32::NAN; 2], [f32::NAN; 2]);
        adam_step(&h, 1, &mut p, &G, &mut m, &mut v).unwrap();
        // At t = 1 the bias corrections undo the (1 − β) factors: p -= lr·sign(g).
        assert_eq!(m, [0.25, 0.125]);
        assert_eq!(v, [0.0625, 0.015625]);
        assert_eq!(p, [0.875, -2.125]);

        // AdamW shrinks p by (1 − lr·wd) first; Adam with L2 adds wd·p to g instead.
        let mut p = P;
        let adamw = Adam {
            weight_decay: 2.0,
            decay: WeightDecay::Decoupled,
            ..h
        };
        adam_step(&adamw, 1, &mut p, &G, &mut m, &mut v).unwrap();
        assert_eq!(p, [0.75 - 0.125, -1.5 - 0.125]);
        let mut p = P;
        let l2 = Adam {
            decay: WeightDecay::L2,
            ..adamw
        };
        adam_step(&l2, 1, &mut p, &G, &mut m, &mut v).unwrap();
        // g = [2.5, -3.75]: the step is still lr·sign(g).
        assert_eq!(p, [0.875, -1.875]);
    }

    #[test]
    fn adam_second_step_uses_the_bias_corrections() {
        let h = Adam::new(0.01);
        let (mut p, mut m, mut v) = ([0.5f32], [0.0f32], [0.0f32]);
        adam_step(&h, 1, &mut p, &[0.2], &mut m, &mut v).unwrap();
        let (p1, m1, v1) = (f64::from(p[0]), f64::from(m[0]), f64::from(v[0]));
        adam_step(&h, 2, &mut p, &[-0.4], &mut m, &mut v).unwrap();
        let (b1, b2) = (f64::from(0.9f32), f64::from(0.999f32));
        let m2 = b1 * m1 + (1.0 - b1) * -0.4;
        let v2 = b2 * v1 + (1.0 - b2) * 0.16;
        let step = f64::from(0.01f32) / (1.0 - b1.powf(2.0)) * m2
            / (v2.sqrt() / (1.0 - b2.powf(2.0)).sqrt() + f64::from(1e-8f32));
        assert_eq!(p[0], (p1 - step) as f32);
        assert_eq!((m[0], v[0]), (m2 as f32, v2 as f32));
    }

    #[test]
    fn rmsprop_by_hand() {
        let h = RmsProp {
            alpha: 0.75,
            eps: 0.0,
            ..RmsProp::new(0.5)
        };
        let mut p = P;
        let mut sq = [f32::NAN; 2];
        rmsprop_step(&h, 1, &mut p, &G, &mut sq, &mut [], &mut []).unwrap();
        // square_avg = g²/4, so g/avg = 2·sign(g).
        assert_eq!(sq, [0.0625, 0.015625]);
        assert_eq!(p, [0.0, -3.0]);

        let centered = RmsProp {
            centered: true,
            momentum: 0.5,
            ..h
        };
        let mut p = P;
        let (mut mean, mut buf) = ([f32::NAN; 2], [f32::NAN; 2]);
        rmsprop_step(&centered, 1, &mut p, &G, &mut sq, &mut mean, &mut buf).unwrap();
        // grad_avg = g/4; square_avg − grad_avg² = 3g²/16, so g/avg = 4/√3·sign(g).
        assert_eq!(mean, [0.125, 0.0625]);
        let step = 4.0 / 3f64.sqrt();
        assert_eq!(buf, [step as f32, step as f32]);
        assert_eq!(p, [(1.0 - 0.5 * step) as f32, (-2.0 - 0.5 * step) as f32]);
        rmsprop_step(&centered, 2, &mut p, &G, &mut sq, &mut mean, &mut buf).unwrap();
        // Second step: square_avg = 7g²/16, grad_avg = 7g/16, variance = 63g²/256.
        let step2 = 0.5 * step + 16.0 / 63f64.sqrt();
        assert!((f64::from(buf[0]) - step2).abs() < 1e-6);
    }

    #[test]
    fn adagrad_by_hand() {
        let h = Adagrad {
            lr_decay: 1.0,
            initial_accumulator_value: 0.75,
            eps: 0.0,
            ..Adagrad::new(0.5)
        };
        let mut p = P;
        let mut sum = [f32::NAN; 2];
        adagrad_step(&h, 1, &mut p, &G, &mut sum).unwrap();
        // sum = 0.75 + g² = [1, 0.8125]; p -= 0.5·g/√sum.
        assert_eq!(sum, [1.0, 0.8125]);
        assert_eq!(p, [0.75, (-2.0 - 0.125 / 0.8125f64.sqrt()) as f32]);
        adagrad_step(&h, 2, &mut p, &G, &mut sum).unwrap();
        // clr = 0.5/2 and sum[0] = 1.25.
        assert_eq!(sum[0], 1.25);
        assert_eq!(p[0], (0.75 - 0.25 * 0.5 / 1.25f64.sqrt()) as f32);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut p = [0.0f32; 3];
        let g = [0.0f32; 3];
        let mut s = [[0.0f32; 3]; 3];
        let [a, b, c] = &mut s;

        assert!(sgd_step(&Sgd::new(0.1), 0, &mut p, &g, &mut []).is_err());
        assert!(sgd_step(&Sgd::new(0.1), 1, &mut p, &g[..2], &mut []).is_err());
        assert!(sgd_step(&Sgd::new(-0.1), 1, &mut p, &g, &mut []).is_err());
        assert!(sgd_step(&Sgd::new(0.1), 1, &mut p, &g, &mut a[..2]).is_err());
        let momentum = Sgd {
            momentum: 0.9,
            ..Sgd::new(0.1)
        };
        assert!(sgd_step(&momentum, 1, &mut p, &g, &mut []).is_err());

        let adam = Adam::new(0.1);
        assert!(adam_step(&adam, 0, &mut p, &g, a, b).is_err());
        assert!(adam_step(&adam, 1, &mut p, &g, &mut a[..2], b).is_err());
        assert!(adam_step(&adam, 1, &mut p, &g, a, &mut []).is_err());
        let bad_beta = Adam { beta2: 1.0, ..adam };
        assert!(adam_step(&bad_beta, 1, &mut p, &g, a, b).is_err());

        let rms = RmsProp::new(0.1);
        assert!(rmsprop_step(&rms, 0, &mut p, &g, a, &mut [], &mut []).is_err());
        assert!(rmsprop_step(&rms, 1, &mut p, &g, &mut [], &mut [], &mut []).is_err());
        let centered = RmsProp {
            centered: true,
            ..rms
        };
        assert!(rmsprop_step(&centered, 1, &mut p, &g, a, &mut [], &mut []).is_err());
        let with_momentum = RmsProp {
            momentum: 0.5,
            ..rms
        };
        assert!(rmsprop_step(&with_momentum, 1, &mut p, &g, a, b, &mut []).is_err());
        assert!(rmsprop_step(&with_momentum, 1, &mut p, &g, a, b, c).is_ok());

        let adagrad = Adagrad::new(0.1);
        assert!(adagrad_step(&adagrad, 0, &mut p, &g, a).is_err());
        assert!(adagrad_step(&adagrad, 1, &mut p, &g, &mut a[..1]).is_err());
        let bad_eps = Adagrad {
            eps: f32::NAN,
            ..adagrad
        };
        assert!(adagrad_step(&bad_eps, 1, &mut p, &g, a).is_err());
    }
}
