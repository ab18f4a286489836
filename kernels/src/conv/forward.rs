//! Forward convolution: one GEMM per chunk of images and group, with bias and activation
//! in its store.

use super::im2col::{copy_run, im2col_nchw, oihw_to_ohwi, ColumnBlock};
use super::{direct_c1, relayout, winograd, Conv2dDesc, Plan};
use crate::arch::Isa;
use crate::eltwise::Activation;
use crate::error::{check_exact, Result};
use crate::gemm::{
    sgemm_on, sgemm_windows_on, Bias, Epilogue, GemmDesc, ImageWindows, MatrixLayout, Transpose,
};
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
    if direct_c1::applies(&plan) {
        direct_c1::forward(isa, &plan, x, w, epilogue.bias, epilogue.activation, y, par);
        return Ok(());
    }
    if winograd::applies_forward(&plan) {
        winograd::forward(isa, &plan, x, w, epilogue.bias, epilogue.activation, y, par);
        return Ok(());
    }
    if relayout::applies(&plan) {
        return relayout::forward(isa, &plan, x, w, epilogue, y, par);
    }
    let (chunk_par, gemm_par) = plan.split(par);
    let b = plan.images_per_chunk;
    let x_chunk = |i: usize, images: usize| &x[i * b * plan.input_len..][..images * plan.input_len];
    if plan.nchw() {
        for_each_chunk_mut(chunk_par, y, b * plan.output_len, |i, y_chunk| {
            let images = y_chunk.len() / plan.output_len;
            forward_chunk_nchw(
                isa,
                &plan,
                x_chunk(i, images),
                w,
                epilogue,
                y_chunk,
                gemm_par,
            );
        });
    } else {
        with_buffer(Buffer::Weights, w.len(), |ohwi| {
            oihw_to_ohwi(w, (desc.out_channels, plan.cg, plan.geometry.taps()), ohwi);
            let ohwi = &*ohwi;
            for_each_chunk_mut(chunk_par, y, b * plan.output_len, |i, y_chunk| {
                let images = y_chunk.len() / plan.output_len;
                forward_chunk_nhwc(
                    isa,
                    &plan,
                    x_chunk(i, images),
                    ohwi,
                    epilogue,
                    y_chunk,
                    gemm_par,
                );
            });
        });
    }
    Ok(())
}

/// A chunk of NCHW images: per group, `Y_g (kg × images·pixels) = W_g · col_g`, where
/// the images' column matrices sit side by side; then each image's rows go back to NCHW.
fn forward_chunk_nchw(
    isa: Isa,
    plan: &Plan,
    x_chunk: &[f32],
    w: &[f32],
    epilogue: ConvEpilogue<'_>,
    y_chunk: &mut [f32],
    par: Parallelism,
) {
    let g = &plan.geometry;
    let (pixels, taps) = (g.output_pixels(), plan.taps_per_group());
    let images = y_chunk.len() / plan.output_len;
    let columns = images * pixels;
    let desc = GemmDesc::row_major(plan.kg, columns, taps);
    for group in 0..plan.desc.groups {
        let w_group = &w[group * plan.group_weight_len()..][..plan.group_weight_len()];
        let gemm_epilogue = group_epilogue(epilogue, group, plan.kg, true);
        let gemm = |col: &[f32], out: &mut [f32]| {
            sgemm_on(isa, &desc, w_group, col, out, &gemm_epilogue, par)
                .expect("shapes derived from a validated plan");
        };
        let y_rows = group * plan.kg * pixels..(group + 1) * plan.kg * pixels;
        if images == 1 && g.is_pointwise() {
            gemm(
                &x_chunk[group * taps * pixels..][..taps * pixels],
                &mut y_chunk[y_rows],
            );
            continue;
        }
        with_buffer(Buffer::Columns, taps * columns, |col| {
            for (j, image) in x_chunk.chunks_exact(plan.input_len).enumerate() {
                let block = ColumnBlock {
                    row_stride: columns,
                    offset: j * pixels,
                };
                im2col_nchw(g, image, (group * plan.cg, plan.cg), col, block);
            }
            if images == 1 {
                gemm(col, &mut y_chunk[y_rows]);
                return;
            }
            with_buffer(Buffer::Staging, plan.kg * columns, |staged| {
                gemm(col, staged);
                for (j, y_image) in y_chunk.chunks_exact_mut(plan.output_len).enumerate() {
                    let y_group = &mut y_image[y_rows.clone()];
                    for (k, row) in y_group.chunks_exact_mut(pixels).enumerate() {
                        copy_run(row, &staged[k * columns + j * pixels..][..pixels]);
                    }
                }
            });
        });
    }
}

/// A chunk of NHWC images, which is one tall matrix of pixels: per group,
/// `Y[:, g] (images·pixels × kg) = col_g (images·pixels × R·S·cg) · W'_gᵀ` with the weights
/// in OHWI order.
fn forward_chunk_nhwc(
    isa: Isa,
    plan: &Plan,
    x_chunk: &[f32],
    ohwi: &[f32],
    epilogue: ConvEpilogue<'_>,
    y_chunk: &mut [f32],
    par: Parallelism,
) {
    let g = &plan.geometry;
    let (pixels, taps) = (g.output_pixels(), plan.taps_per_group());
    let rows = (y_chunk.len() / plan.output_len) * pixels;
    let (channels, out_channels) = (plan.desc.in_channels, plan.desc.out_channels);
    let desc = GemmDesc {
        trans_b: Transpose::Yes,
        b: MatrixLayout::row_major(taps),
        c: MatrixLayout::row_major(out_channels),
        ..GemmDesc::row_major(rows, plan.kg, taps)
    };
    for group in 0..plan.desc.groups {
        let w_group = &ohwi[group * plan.group_weight_len()..][..plan.group_weight_len()];
        let gemm_epilogue = group_epilogue(epilogue, group, plan.kg, false);
        let y_group = &mut y_chunk[group * plan.kg..];
        if g.is_pointwise() {
            // The images are already pixels × channels: read this group's columns in place.
            let direct = GemmDesc {
                a: MatrixLayout::row_major(channels),
                ..desc
            };
            let x_group = &x_chunk[group * plan.cg..];
            sgemm_on(isa, &direct, x_group, w_group, y_group, &gemm_epilogue, par)
                .expect("shapes derived from a validated plan");
            continue;
        }
        // Implicit im2col: GEMM packs its A panels straight from the images' windows.
        let windows = ImageWindows {
            images: x_chunk,
            image_len: plan.input_len,
            geometry: *g,
            channels,
            first_channel: group * plan.cg,
            group_channels: plan.cg,
        };
        sgemm_windows_on(isa, &desc, windows, w_group, y_group, &gemm_epilogue, par)
            .expect("shapes derived from a validated plan");
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
