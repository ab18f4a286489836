//! Reference 2-D convolution, PyTorch `Conv2d` semantics: forward, backward-data and
//! backward-weights.
//!
//! Along each spatial axis, output position `o` reads input position
//! `o·stride − padding + t·dilation` through kernel tap `t`; positions outside the input
//! are the zero padding and contribute nothing. Output channel `k` belongs to group
//! `k / (K / groups)` and sees only that group's `C / groups` input channels.
//!
//! Every function is a gather: each element it writes is one sum over the terms the
//! formula names, accumulated in f64 and rounded to f32 once.

use crate::conv::Conv2dDesc;
use crate::error::{check_exact, Result};
use crate::layout::Dims4;

/// One spatial axis of a convolution: how output positions and taps meet input positions.
#[derive(Debug, Clone, Copy)]
struct Axis {
    input: usize,
    output: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
}

impl Axis {
    /// Axis `d` (0 = height, 1 = width) of a validated descriptor.
    fn of(desc: &Conv2dDesc, output: [usize; 2], d: usize) -> Axis {
        Axis {
            input: desc.input[d],
            output: output[d],
            stride: desc.stride[d],
            padding: desc.padding[d],
            dilation: desc.dilation[d],
        }
    }

    /// The input position that output `o` reads through tap `t`; `None` in the padding.
    ///
    /// Cannot overflow: `validate` checked that the last window ends inside the padded input.
    fn input_of(self, o: usize, t: usize) -> Option<usize> {
        (o * self.stride + t * self.dilation)
            .checked_sub(self.padding)
            .filter(|&i| i < self.input)
    }

    /// The output position that reads input `i` through tap `t`, if any: the inverse of
    /// [`Axis::input_of`].
    fn output_of(self, i: usize, t: usize) -> Option<usize> {
        let padded = (i + self.padding).checked_sub(t * self.dilation)?;
        if padded % self.stride != 0 {
            return None;
        }
        Some(padded / self.stride).filter(|&o| o < self.output)
    }
}

/// Validates `desc` and returns the input and output sizes.
fn checked_dims(desc: &Conv2dDesc) -> Result<(Dims4, Dims4)> {
    desc.validate()?;
    Ok((desc.input_dims(), desc.output_dims()?))
}

/// Offset of weight (k, c, r, s) in the OIHW tensor, `c` counted within the group.
fn weight_index(desc: &Conv2dDesc, k: usize, c: usize, r: usize, s: usize) -> usize {
    ((k * desc.channels_per_group() + c) * desc.kernel[0] + r) * desc.kernel[1] + s
}

/// Forward convolution: `y[n,k,oh,ow] = bias[k] + Σ_{c,r,s} x[n, g·C/G + c, ih, iw] · w[k,c,r,s]`
/// with `ih = oh·stride − pad + r·dilation` (same for `iw`), `g` the group of `k`, and the
/// padding reading as zero.
///
/// Shapes: `x` is `batch × in_channels × input` in `desc.layout`; `w` is OIHW
/// `out_channels × in_channels/groups × kernel`; `bias`, when given, has `out_channels`
/// elements; `y` is `batch × out_channels × output_hw()` in `desc.layout` and is overwritten.
pub fn conv2d_forward(
    desc: &Conv2dDesc,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<()> {
    let (xd, yd) = checked_dims(desc)?;
    check_exact("conv2d x", xd.len(), x.len())?;
    check_exact("conv2d w", desc.weight_len(), w.len())?;
    if let Some(bias) = bias {
        check_exact("conv2d bias", desc.out_channels, bias.len())?;
    }
    check_exact("conv2d y", yd.len(), y.len())?;
    let rows = Axis::of(desc, [yd.h, yd.w], 0);
    let cols = Axis::of(desc, [yd.h, yd.w], 1);
    let cpg = desc.channels_per_group();
    let kpg = desc.out_channels_per_group();
    let layout = desc.layout;
    for n in 0..yd.n {
        for k in 0..yd.c {
            let first_channel = (k / kpg) * cpg;
            for oh in 0..yd.h {
                for ow in 0..yd.w {
                    let mut sum = bias.map_or(0.0, |b| f64::from(b[k]));
                    for c in 0..cpg {
                        for r in 0..desc.kernel[0] {
                            let Some(ih) = rows.input_of(oh, r) else {
                                continue;
                            };
                            for s in 0..desc.kernel[1] {
                                let Some(iw) = cols.input_of(ow, s) else {
                                    continue;
                                };
                                let xv = x[layout.index(xd, n, first_channel + c, ih, iw)];
                                let wv = w[weight_index(desc, k, c, r, s)];
                                sum += f64::from(xv) * f64::from(wv);
                            }
                        }
                    }
                    y[layout.index(yd, n, k, oh, ow)] = sum as f32;
                }
            }
        }
    }
    Ok(())
}

/// Gradient of the forward pass with respect to its input:
/// `dx[n,ci,ih,iw] = Σ_{k,r,s} dy[n,k,oh,ow] · w[k,c,r,s]` over the output channels `k` of
/// `ci`'s group and the taps `(r, s)` whose output position `(oh, ow)` reads `(ih, iw)`
/// (`c` is `ci` counted within its group).
///
/// Shapes: `dy` is the output's shape and `dx` the input's, both in `desc.layout`; `w` is
/// OIHW as in [`conv2d_forward`]. `dx` is overwritten.
pub fn conv2d_backward_data(
    desc: &Conv2dDesc,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    let (xd, yd) = checked_dims(desc)?;
    check_exact("conv2d dy", yd.len(), dy.len())?;
    check_exact("conv2d w", desc.weight_len(), w.len())?;
    check_exact("conv2d dx", xd.len(), dx.len())?;
    let rows = Axis::of(desc, [yd.h, yd.w], 0);
    let cols = Axis::of(desc, [yd.h, yd.w], 1);
    let cpg = desc.channels_per_group();
    let kpg = desc.out_channels_per_group();
    let layout = desc.layout;
    for n in 0..xd.n {
        for ci in 0..xd.c {
            let (group, c) = (ci / cpg, ci % cpg);
            for ih in 0..xd.h {
                for iw in 0..xd.w {
                    let mut sum = 0.0f64;
                    for k in group * kpg..(group + 1) * kpg {
                        for r in 0..desc.kernel[0] {
                            let Some(oh) = rows.output_of(ih, r) else {
                                continue;
                            };
                            for s in 0..desc.kernel[1] {
                                let Some(ow) = cols.output_of(iw, s) else {
                                    continue;
                                };
                                let dyv = dy[layout.index(yd, n, k, oh, ow)];
                                let wv = w[weight_index(desc, k, c, r, s)];
                                sum += f64::from(dyv) * f64::from(wv);
                            }
                        }
                    }
                    dx[layout.index(xd, n, ci, ih, iw)] = sum as f32;
                }
            }
        }
    }
    Ok(())
}

/// Gradients with respect to the weights and the bias:
/// `dw[k,c,r,s] = Σ_{n,oh,ow} x[n, g·C/G + c, ih, iw] · dy[n,k,oh,ow]` (padding reads zero)
/// and `db[k] = Σ_{n,oh,ow} dy[n,k,oh,ow]`.
///
/// Shapes: `x` as in [`conv2d_forward`], `dy` the output's shape (both in `desc.layout`);
/// `dw` is OIHW like the weights; `db`, when given, has `out_channels` elements. Both are
/// overwritten.
pub fn conv2d_backward_weights(
    desc: &Conv2dDesc,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) -> Result<()> {
    let (xd, yd) = checked_dims(desc)?;
    check_exact("conv2d x", xd.len(), x.len())?;
    check_exact("conv2d dy", yd.len(), dy.len())?;
    check_exact("conv2d dw", desc.weight_len(), dw.len())?;
    if let Some(db) = db.as_deref() {
        check_exact("conv2d db", desc.out_channels, db.len())?;
    }
    let rows = Axis::of(desc, [yd.h, yd.w], 0);
    let cols = Axis::of(desc, [yd.h, yd.w], 1);
    let cpg = desc.channels_per_group();
    let kpg = desc.out_channels_per_group();
    let layout = desc.layout;
    for k in 0..yd.c {
        let first_channel = (k / kpg) * cpg;
        for c in 0..cpg {
            for r in 0..desc.kernel[0] {
                for s in 0..desc.kernel[1] {
                    let mut sum = 0.0f64;
                    for n in 0..yd.n {
                        for oh in 0..yd.h {
                            let Some(ih) = rows.input_of(oh, r) else {
                                continue;
                            };
                            for ow in 0..yd.w {
                                let Some(iw) = cols.input_of(ow, s) else {
                                    continue;
                                };
                                let xv = x[layout.index(xd, n, first_channel + c, ih, iw)];
                                let dyv = dy[layout.index(yd, n, k, oh, ow)];
                                sum += f64::from(xv) * f64::from(dyv);
                            }
                        }
                    }
                    dw[weight_index(desc, k, c, r, s)] = sum as f32;
                }
            }
        }
    }
    if let Some(db) = db {
        for (k, db_k) in db.iter_mut().enumerate() {
            let mut sum = 0.0f64;
            for n in 0..yd.n {
                for oh in 0..yd.h {
                    for ow in 0..yd.w {
                        sum += f64::from(dy[layout.index(yd, n, k, oh, ow)]);
                    }
                }
            }
            *db_k = sum as f32;
        }
    }
    Ok(())
}

/// Helpers shared with the pooling tests.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::KernelError;
    use crate::layout::Layout;

    /// A small deterministic generator (xorshift64*), so that tests need no crate.
    pub(crate) struct Rng(u64);

    impl Rng {
        pub(crate) fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }

        /// Uniform in [-1, 1), a multiple of 2⁻²³.
        pub(crate) fn uniform(&mut self) -> f32 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            bits as f32 / (1u64 << 23) as f32 - 1.0
        }

        pub(crate) fn vec(&mut self, len: usize) -> Vec<f32> {
            (0..len).map(|_| self.uniform()).collect()
        }
    }

    /// `values` (sizes `dims`, layout `from`) rewritten in layout `to`.
    pub(crate) fn relayout<T: Copy + Default>(
        values: &[T],
        dims: Dims4,
        from: Layout,
        to: Layout,
    ) -> Vec<T> {
        let mut out = vec![T::default(); values.len()];
        for n in 0..dims.n {
            for c in 0..dims.c {
                for h in 0..dims.h {
                    for w in 0..dims.w {
                        out[to.index(dims, n, c, h, w)] = values[from.index(dims, n, c, h, w)];
                    }
                }
            }
        }
        out
    }

    /// Σ a·b in f64, and Σ |a·b| to scale the tolerance of an identity between two dots.
    pub(crate) fn dot(a: &[f32], b: &[f32]) -> (f64, f64) {
        a.iter().zip(b).fold((0.0, 0.0), |(sum, mag), (&a, &b)| {
            let p = f64::from(a) * f64::from(b);
            (sum + p, mag + p.abs())
        })
    }

    /// Descriptors that exercise every parameter: stride, padding, dilation, groups,
    /// depthwise, rectangular kernels and windows lying wholly in the padding.
    fn descriptors() -> Vec<Conv2dDesc> {
        vec![
            Conv2dDesc::new(2, 4, [6, 7], 6, [3, 2])
                .stride([2, 1])
                .padding([1, 1])
                .groups(2),
            Conv2dDesc::new(1, 3, [7, 7], 4, [3, 3])
                .dilation([2, 1])
                .padding([2, 1]),
            Conv2dDesc::new(2, 4, [5, 5], 8, [3, 3])
                .groups(4)
                .padding([1, 1]),
            Conv2dDesc::new(1, 2, [4, 5], 3, [1, 1]).stride([2, 3]),
            Conv2dDesc::new(1, 2, [2, 3], 2, [3, 3])
                .padding([3, 2])
                .stride([2, 1]),
            Conv2dDesc::new(2, 6, [9, 8], 3, [2, 3])
                .stride([3, 2])
                .dilation([2, 3])
                .padding([1, 2])
                .groups(3),
        ]
    }

    struct Run {
        y: Vec<f32>,
        dx: Vec<f32>,
        dw: Vec<f32>,
        db: Vec<f32>,
    }

    /// Forward and both backward passes of `desc` on NCHW data, run in `desc.layout`.
    fn run_in_layout(desc: &Conv2dDesc, x: &[f32], w: &[f32], b: &[f32], dy: &[f32]) -> Run {
        let (xd, yd) = checked_dims(desc).unwrap();
        let to = desc.layout;
        let (x, dy) = (
            relayout(x, xd, Layout::Nchw, to),
            relayout(dy, yd, Layout::Nchw, to),
        );
        let mut y = vec![f32::NAN; yd.len()];
        let mut dx = vec![f32::NAN; xd.len()];
        let mut dw = vec![f32::NAN; w.len()];
        let mut db = vec![f32::NAN; b.len()];
        conv2d_forward(desc, &x, w, Some(b), &mut y).unwrap();
        conv2d_backward_data(desc, &dy, w, &mut dx).unwrap();
        conv2d_backward_weights(desc, &x, &dy, &mut dw, Some(&mut db)).unwrap();
        Run {
            y: relayout(&y, yd, to, Layout::Nchw),
            dx: relayout(&dx, xd, to, Layout::Nchw),
            dw,
            db,
        }
    }

    #[test]
    fn small_convolution_by_hand() {
        // x = 1..9 as a 3 × 3 image, w = [1 2; 3 4].
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let w = [1.0, 2.0, 3.0, 4.0];
        let desc = Conv2dDesc::new(1, 1, [3, 3], 1, [2, 2]);
        let mut y = [f32::NAN; 4];
        conv2d_forward(&desc, &x, &w, Some(&[0.5]), &mut y).unwrap();
        assert_eq!(y, [37.5, 47.5, 67.5, 77.5]);

        // dy = 1 everywhere: dx counts the taps that reach each input, weighted by w.
        let mut dx = [f32::NAN; 9];
        conv2d_backward_data(&desc, &[1.0; 4], &w, &mut dx).unwrap();
        assert_eq!(dx, [1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 3.0, 7.0, 4.0]);
        let (mut dw, mut db) = ([f32::NAN; 4], [f32::NAN]);
        conv2d_backward_weights(&desc, &x, &[1.0; 4], &mut dw, Some(&mut db)).unwrap();
        assert_eq!(dw, [12.0, 16.0, 24.0, 28.0]);
        assert_eq!(db, [4.0]);

        // Padding 1, stride 2: the windows start at rows/columns -1 and 1.
        let desc = desc.padding([1, 1]).stride([2, 2]);
        conv2d_forward(&desc, &x, &w, None, &mut y).unwrap();
        assert_eq!(y, [4.0, 18.0, 36.0, 77.0]);
    }

    #[test]
    fn groups_see_only_their_own_channels() {
        // Two groups of one channel each; the second group's filter is zero, so its
        // output must not see the first channel.
        let desc = Conv2dDesc::new(1, 2, [1, 2], 2, [1, 1]).groups(2);
        let x = [1.0, 2.0, 10.0, 20.0];
        let mut y = [f32::NAN; 4];
        conv2d_forward(&desc, &x, &[3.0, 0.5], None, &mut y).unwrap();
        assert_eq!(y, [3.0, 6.0, 5.0, 10.0]);
    }

    #[test]
    fn nhwc_matches_nchw() {
        let mut rng = Rng::new(1);
        for desc in descriptors() {
            let (xd, yd) = checked_dims(&desc).unwrap();
            let x = rng.vec(xd.len());
            let w = rng.vec(desc.weight_len());
            let b = rng.vec(desc.out_channels);
            let dy = rng.vec(yd.len());
            let nchw = run_in_layout(&desc, &x, &w, &b, &dy);
            let nhwc = run_in_layout(&desc.layout(Layout::Nhwc), &x, &w, &b, &dy);
            // Same terms summed in the same order: the results are bit-identical.
            assert_eq!(nchw.y, nhwc.y, "{desc:?}");
            assert_eq!(nchw.dx, nhwc.dx, "{desc:?}");
            assert_eq!(nchw.dw, nhwc.dw, "{desc:?}");
            assert_eq!(nchw.db, nhwc.db, "{desc:?}");
        }
    }

    /// The backward passes are the adjoints of the forward pass, which is linear in x and
    /// in w: <conv(x; w), dy> = <x, dx(dy; w)> = <w, dw(x, dy)>, and <b, db> = <b ⊗ 1, dy>.
    #[test]
    fn backward_passes_are_adjoints_of_forward() {
        let mut rng = Rng::new(2);
        for desc in descriptors() {
            let (xd, yd) = checked_dims(&desc).unwrap();
            let x = rng.vec(xd.len());
            let w = rng.vec(desc.weight_len());
            let b = rng.vec(desc.out_channels);
            let dy = rng.vec(yd.len());
            let run = run_in_layout(&desc, &x, &w, &b, &dy);
            let mut y_no_bias = vec![0.0; yd.len()];
            conv2d_forward(&desc, &x, &w, None, &mut y_no_bias).unwrap();
            let mut y_bias_only = vec![0.0; yd.len()];
            conv2d_forward(&desc, &x, &vec![0.0; w.len()], Some(&b), &mut y_bias_only).unwrap();

            let (forward, mag) = dot(&y_no_bias, &dy);
            for (what, (adjoint, _)) in [("dx", dot(&x, &run.dx)), ("dw", dot(&w, &run.dw))] {
                assert!(
                    (forward - adjoint).abs() <= 1e-6 * mag,
                    "{desc:?} {what}: {forward} vs {adjoint}"
                );
            }
            let (forward, mag) = dot(&y_bias_only, &dy);
            let (adjoint, _) = dot(&b, &run.db);
            assert!(
                (forward - adjoint).abs() <= 1e-6 * mag,
                "{desc:?} db: {forward} vs {adjoint}"
            );
        }
    }

    /// The weight gradient against central differences of the forward pass; the loss
    /// <conv(x; w), dy> is linear in w, so the difference is exact but for rounding.
    #[test]
    fn weight_gradient_matches_finite_differences() {
        let mut rng = Rng::new(3);
        let desc = descriptors()[0];
        let (xd, yd) = checked_dims(&desc).unwrap();
        let x = rng.vec(xd.len());
        let mut w = rng.vec(desc.weight_len());
        let dy = rng.vec(yd.len());
        let mut dw = vec![0.0; w.len()];
        conv2d_backward_weights(&desc, &x, &dy, &mut dw, None).unwrap();
        let mut y = vec![0.0; yd.len()];
        let mut loss = |w: &[f32]| {
            conv2d_forward(&desc, &x, w, None, &mut y).unwrap();
            dot(&y, &dy).0
        };
        let h = 0.25; // a power of two: w ± h is exact in f32 for |w| ≤ 1
        for i in 0..w.len() {
            let w0 = w[i];
            w[i] = w0 + h;
            let plus = loss(&w);
            w[i] = w0 - h;
            let minus = loss(&w);
            w[i] = w0;
            let numeric = (plus - minus) / (2.0 * f64::from(h));
            assert!(
                (numeric - f64::from(dw[i])).abs() <= 1e-4,
                "dw[{i}]: {} vs {numeric}",
                dw[i]
            );
        }
    }

    #[test]
    fn empty_batch_is_fine() {
        let desc = Conv2dDesc::new(0, 2, [3, 3], 2, [3, 3]);
        let mut dw = [f32::NAN; 36];
        let mut db = [f32::NAN; 2];
        conv2d_forward(&desc, &[], &[0.0; 36], None, &mut []).unwrap();
        conv2d_backward_data(&desc, &[], &[0.0; 36], &mut []).unwrap();
        conv2d_backward_weights(&desc, &[], &[], &mut dw, Some(&mut db)).unwrap();
        assert_eq!(dw, [0.0; 36]);
        assert_eq!(db, [0.0; 2]);
    }

    #[test]
    fn bad_lengths_and_descriptors_are_errors() {
        let desc = Conv2dDesc::new(1, 2, [3, 3], 2, [2, 2]); // x 18, w 16, y 8
        let (x, w, b, dy) = (vec![0.0; 18], vec![0.0; 16], vec![0.0; 2], vec![0.0; 8]);
        let (mut y, mut dx, mut dw, mut db) =
            (vec![0.0; 8], vec![0.0; 18], vec![0.0; 16], [0.0; 2]);
        let is_shape = |r: Result<()>| matches!(r, Err(KernelError::ShapeMismatch { .. }));

        assert!(conv2d_forward(&desc, &x, &w, Some(&b), &mut y).is_ok());
        assert!(is_shape(conv2d_forward(&desc, &x[1..], &w, None, &mut y)));
        assert!(is_shape(conv2d_forward(&desc, &x, &w[1..], None, &mut y)));
        assert!(is_shape(conv2d_forward(
            &desc,
            &x,
            &w,
            Some(&b[1..]),
            &mut y
        )));
        assert!(is_shape(conv2d_forward(&desc, &x, &w, None, &mut [0.0; 9])));

        assert!(conv2d_backward_data(&desc, &dy, &w, &mut dx).is_ok());
        assert!(is_shape(conv2d_backward_data(&desc, &dy[1..], &w, &mut dx)));
        assert!(is_shape(conv2d_backward_data(&desc, &dy, &w[1..], &mut dx)));
        assert!(is_shape(conv2d_backward_data(&desc, &dy, &w, &mut dx[1..])));

        assert!(conv2d_backward_weights(&desc, &x, &dy, &mut dw, Some(&mut db)).is_ok());
        assert!(is_shape(conv2d_backward_weights(
            &desc,
            &x[1..],
            &dy,
            &mut dw,
            None
        )));
        assert!(is_shape(conv2d_backward_weights(
            &desc,
            &x,
            &dy[1..],
            &mut dw,
            None
        )));
        assert!(is_shape(conv2d_backward_weights(
            &desc,
            &x,
            &dy,
            &mut dw[1..],
            None
        )));
        assert!(is_shape(conv2d_backward_weights(
            &desc,
            &x,
            &dy,
            &mut dw,
            Some(&mut db[1..])
        )));

        let bad = desc.groups(3);
        assert!(matches!(
            conv2d_forward(&bad, &x, &w, None, &mut y),
            Err(KernelError::InvalidParameter { .. })
        ));
        assert!(conv2d_backward_data(&bad, &dy, &w, &mut dx).is_err());
        assert!(conv2d_backward_weights(&bad, &x, &dy, &mut dw, None).is_err());
    }
}
