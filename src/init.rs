//! Weight initialization: PyTorch's defaults, Xavier/Glorot and He/Kaiming.
//!
//! Fans follow PyTorch: for a weight of shape `[out, in, kh, kw]` (or `[out, in]`),
//! fan_in = in·kh·kw and fan_out = out·kh·kw.

use crate::rng::Rng;

/// How a weight tensor is filled.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Init {
    /// PyTorch's default for `Linear` and `Conv2d` weights: `kaiming_uniform_(a = √5)`,
    /// which is U(−b, b) with b = 1/√fan_in.
    #[default]
    PyTorchDefault,
    /// Glorot: U(−b, b), b = √(6 / (fan_in + fan_out)).
    XavierUniform,
    /// Glorot: N(0, 2 / (fan_in + fan_out)).
    XavierNormal,
    /// He, for ReLU networks: U(−b, b), b = √(6 / fan_in).
    KaimingUniform,
    /// He: N(0, 2 / fan_in).
    KaimingNormal,
}

/// (fan_in, fan_out) of a weight shaped `[out, in, ...kernel]`.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    let receptive: usize = shape.iter().skip(2).product();
    let out = shape.first().copied().unwrap_or(1);
    let inp = shape.get(1).copied().unwrap_or(1);
    (inp * receptive, out * receptive)
}

impl Init {
    /// `len` values for a weight shaped `shape`.
    pub fn weights(self, shape: &[usize], rng: &mut Rng) -> Vec<f32> {
        let len = shape.iter().product();
        let (fan_in, fan_out) = fans(shape);
        let (fan_in, fan_out) = (fan_in.max(1) as f32, fan_out.max(1) as f32);
        let uniform = |rng: &mut Rng, b: f32| (0..len).map(|_| rng.uniform_in(-b, b)).collect();
        let normal = |rng: &mut Rng, std: f32| (0..len).map(|_| std * rng.normal()).collect();
        match self {
            Init::PyTorchDefault => uniform(rng, 1.0 / fan_in.sqrt()),
            Init::XavierUniform => uniform(rng, (6.0 / (fan_in + fan_out)).sqrt()),
            Init::XavierNormal => normal(rng, (2.0 / (fan_in + fan_out)).sqrt()),
            Init::KaimingUniform => uniform(rng, (6.0 / fan_in).sqrt()),
            Init::KaimingNormal => normal(rng, (2.0 / fan_in).sqrt()),
        }
    }
}

/// PyTorch's default bias of a layer with `fan_in` inputs per output: U(−b, b),
/// b = 1/√fan_in.
pub fn default_bias(len: usize, fan_in: usize, rng: &mut Rng) -> Vec<f32> {
    let b = 1.0 / (fan_in.max(1) as f32).sqrt();
    (0..len).map(|_| rng.uniform_in(-b, b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_and_bounds_follow_pytorch() {
        assert_eq!(fans(&[32, 1, 3, 3]), (9, 288));
        assert_eq!(fans(&[64, 576]), (576, 64));
        let mut rng = Rng::new(1);
        let w = Init::PyTorchDefault.weights(&[64, 576], &mut rng);
        let b = 1.0 / 24.0;
        assert!(w.iter().all(|v| v.abs() <= b));
        assert!(w.iter().any(|v| v.abs() > 0.9 * b));
        let w = Init::KaimingNormal.weights(&[256, 256, 3, 3], &mut rng);
        let var = w.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / w.len() as f64;
        assert!((var - 2.0 / 2304.0).abs() < 0.05 * 2.0 / 2304.0, "{var}");
    }
}
