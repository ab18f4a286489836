//! Forward convolution: one GEMM per image and group, bias and activation in its store.

use super::im2col::{im2col_nchw, im2col_nhwc, oihw_to_ohwi};
use super::{Conv2dDesc, Plan};
use crate::arch::Isa;
use crate::eltwise::Activation;
use crate::error::{check_exact, Result};
use crate::gemm::{sgemm_on, Bias, Epilogue, GemmDesc, MatrixLayout, Transpose};
use crate::parallel::{for_each_chunk_mut, Parallelism};
use crate::workspace::{with_buffer, Buffer};

/// What the forward convolution adds and applies as it writes each output tile.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ConvEpilogue<'a> {
    /// One value per output channel.
    pub bias: Option<&'a [f32]>,
    pub activation: Activation,
}

/// `y = activation(conv(x, w) + bias)` on the process's ISA path ([`Isa::selected`]).
///
/// Shapes: `x` is `batch × in_channels × input` in `desc.layout`, `w` is OIHW
/// (`out_channels × in_channels/groups × kernel`), the bias has `out_channels` values, and
/// `y` (`batch × out_channels × output_hw()`, overwritten) is in `desc.layout`.
///
/// ```
/// use axonal_kernels::conv::{conv2d_forward, Conv2dDesc, ConvEpilogue};
/// use axonal_kernels::Parallelism;
/// let desc = Conv2dDesc::new(1, 1, [3, 3], 1, [2, 2]);
/// let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
/// let w = [1.0, 0.0, 0.0, 1.0]; // sums the diagonal of each 2×2 window
/// let mut y = [0.0; 4];
/// conv2d_forward(&desc, &x, &w, ConvEpilogue::default(), &mut y, Parallelism::Sequential)?;
/// assert_eq!(y, [6.0, 8.0, 12.0, 14.0]);
/// # Ok::<(), axonal_kernels::KernelError>(())
/// ```
pub fn conv2d_forward(
    desc: &Conv2dDesc,
    x: &[f32],
    w: &[f32],
    epilogue: ConvEpilogue<'_>,
    y: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    conv2d_forward_on(Isa::selected()?, desc, x, w, epilogue, y, par)
}

/// [`conv2d_forward`] on an explicit ISA path.
pub fn conv2d_forward_on(
    isa: Isa,
    desc: &Conv2dDesc,
    x: &[f32],
    w: &[f32],
    epilogue: ConvEpilogue<'_>,
    y: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    isa.check_available()?;
    par.validate()?;
    let plan = Plan::new(desc, x.len(), w.len(), y.len())?;
    if let Some(bias) = epilogue.bias {
        check_exact("conv2d bias", desc.out_channels, bias.len())?;
    }
    epilogue.activation.validate()?;
    if y.is_empty() {
        return Ok(());
    }
    let (image_par, gemm_par) = plan.split(par);
    if plan.nchw() {
        for_each_chunk_mut(image_par, y, plan.output_len, |n, y_image| {
            let x_image = &x[n * plan.input_len..(n + 1) * plan.input_len];
            forward_image_nchw(isa, &plan, x_image, w, epilogue, y_image, gemm_par);
        });
    } else {
        let taps = plan.taps_per_group();
        with_buffer(Buffer::Weights, w.len(), |ohwi| {
            oihw_to_ohwi(w, (desc.out_channels, plan.cg, plan.geometry.taps()), ohwi);
            let ohwi = &*ohwi;
            debug_assert_eq!(ohwi.len(), plan.kg * desc.groups * taps);
            for_each_chunk_mut(image_par, y, plan.output_len, |n, y_image| {
                let x_image = &x[n * plan.input_len..(n + 1) * plan.input_len];
                forward_image_nhwc(isa, &plan, x_image, ohwi, epilogue, y_image, gemm_par);
            });
        });
    }
    Ok(())
}

/// One NCHW image: per group, `Y_g (kg × pixels) = W_g (kg × cg·R·S) · col_g`.
fn forward_image_nchw(
    isa: Isa,
    plan: &Plan,
    x_image: &[f32],
    w: &[f32],
    epilogue: ConvEpilogue<'_>,
    y_image: &mut [f32],
    par: Parallelism,
) {
    let g = &plan.geometry;
    let (pixels, taps) = (g.output_pixels(), plan.taps_per_group());
    for (group, y_group) in y_image.chunks_exact_mut(plan.kg * pixels).enumerate() {
        let w_group = &w[group * plan.group_weight_len()..][..plan.group_weight_len()];
        let gemm_epilogue = group_epilogue(epilogue, group, plan.kg, true);
        let desc = GemmDesc::row_major(plan.kg, pixels, taps);
        let run = |col: &[f32], y_group: &mut [f32]| {
            sgemm_on(isa, &desc, w_group, col, y_group, &gemm_epilogue, par)
                .expect("shapes derived from a validated plan");
        };
        if g.is_pointwise() {
            run(
                &x_image[group * plan.cg * pixels..][..plan.cg * pixels],
                y_group,
            );
        } else {
            with_buffer(Buffer::Columns, plan.col_len, |col| {
                im2col_nchw(g, x_image, group * plan.cg, plan.cg, col);
                run(col, y_group);
            });
        }
    }
}

/// One NHWC image: per group, `Y[:, g] (pixels × kg) = col_g (pixels × R·S·cg) · W'_gᵀ`
/// with the weights in OHWI order.
fn forward_image_nhwc(
    isa: Isa,
    plan: &Plan,
    x_image: &[f32],
    ohwi: &[f32],
    epilogue: ConvEpilogue<'_>,
    y_image: &mut [f32],
    par: Parallelism,
) {
    let g = &plan.geometry;
    let (pixels, taps) = (g.output_pixels(), plan.taps_per_group());
    let (channels, out_channels) = (plan.desc.in_channels, plan.desc.out_channels);
    for group in 0..plan.desc.groups {
        let w_group = &ohwi[group * plan.group_weight_len()..][..plan.group_weight_len()];
        let gemm_epilogue = group_epilogue(epilogue, group, plan.kg, false);
        let desc = GemmDesc {
            trans_b: Transpose::Yes,
            b: MatrixLayout::row_major(taps),
            c: MatrixLayout::row_major(out_channels),
            ..GemmDesc::row_major(pixels, plan.kg, taps)
        };
        let y_group = &mut y_image[group * plan.kg..];
        if g.is_pointwise() {
            // The image is already pixels × channels: read this group's columns in place.
            let a = GemmDesc {
                a: MatrixLayout::row_major(channels),
                ..desc
            };
            sgemm_on(
                isa,
                &a,
                &x_image[group * plan.cg..],
                w_group,
                y_group,
                &gemm_epilogue,
                par,
            )
            .expect("shapes derived from a validated plan");
        } else {
            with_buffer(Buffer::Columns, plan.col_len, |col| {
                im2col_nhwc(g, x_image, (group * plan.cg, plan.cg, channels), col);
                sgemm_on(isa, &desc, col, w_group, y_group, &gemm_epilogue, par)
                    .expect("shapes derived from a validated plan");
            });
        }
    }
}

/// The GEMM epilogue of one group: its slice of the bias, per row (NCHW: rows are output
/// channels) or per column (NHWC).
fn group_epilogue<'a>(e: ConvEpilogue<'a>, group: usize, kg: usize, per_row: bool) -> Epilogue<'a> {
    let bias = match e.bias {
        None => Bias::None,
        Some(b) if per_row => Bias::PerRow(&b[group * kg..(group + 1) * kg]),
        Some(b) => Bias::PerCol(&b[group * kg..(group + 1) * kg]),
    };
    Epilogue::default().bias(bias).activation(e.activation)
}
