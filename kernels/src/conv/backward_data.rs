//! Backward-data: the gradient of the input, `dX = col2im(Wᵀ · dY)` per chunk of images
//! and group.

use super::im2col::{col2im_nchw, col2im_nhwc, oihw_to_ohwi, ColumnBlock};
use super::{gather_nchw_rows, relayout, winograd, Conv2dDesc, Plan};
use crate::arch::Isa;
use crate::error::Result;
use crate::gemm::{sgemm_on, Epilogue, GemmDesc, MatrixLayout, Transpose};
use crate::parallel::{for_each_chunk_mut, Parallelism};
use crate::workspace::{with_buffer, Buffer};

/// `dx = ∂L/∂x` from `dy = ∂L/∂y` and the weights, on the process's ISA path.
///
/// Shapes as in [`conv2d_forward`](super::conv2d_forward): `dy` like `y`, `w` OIHW, `dx`
/// like `x` (overwritten).
pub fn conv2d_backward_data(
    desc: &Conv2dDesc,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    conv2d_backward_data_on(Isa::selected()?, desc, dy, w, dx, par)
}

/// [`conv2d_backward_data`] on an explicit ISA path.
pub fn conv2d_backward_data_on(
    isa: Isa,
    desc: &Conv2dDesc,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    isa.check_available()?;
    par.validate()?;
    let plan = Plan::new(desc, dx.len(), w.len(), dy.len())?;
    if dx.is_empty() {
        return Ok(());
    }
    if winograd::applies_backward_data(&plan) {
        winograd::backward_data(isa, &plan, dy, w, dx, par);
        return Ok(());
    }
    if relayout::applies(&plan) {
        return relayout::backward_data(isa, &plan, dy, w, dx, par);
    }
    let (chunk_par, gemm_par) = plan.split(par);
    let b = plan.images_per_chunk;
    let dy_chunk =
        |i: usize, images: usize| &dy[i * b * plan.output_len..][..images * plan.output_len];
    if plan.nchw() {
        for_each_chunk_mut(chunk_par, dx, b * plan.input_len, |i, dx_chunk| {
            let images = dx_chunk.len() / plan.input_len;
            backward_chunk_nchw(isa, &plan, dy_chunk(i, images), w, dx_chunk, gemm_par);
        });
    } else {
        with_buffer(Buffer::Weights, w.len(), |ohwi| {
            oihw_to_ohwi(w, (desc.out_channels, plan.cg, plan.geometry.taps()), ohwi);
            let ohwi = &*ohwi;
            for_each_chunk_mut(chunk_par, dx, b * plan.input_len, |i, dx_chunk| {
                let images = dx_chunk.len() / plan.input_len;
                backward_chunk_nhwc(isa, &plan, dy_chunk(i, images), ohwi, dx_chunk, gemm_par);
            });
        });
    }
    Ok(())
}

/// A chunk of NCHW images: per group, `dcol (cg·R·S × images·pixels) = W_gᵀ · dY_g` with
/// the images' gradients side by side, then col2im into each image.
fn backward_chunk_nchw(
    isa: Isa,
    plan: &Plan,
    dy_chunk: &[f32],
    w: &[f32],
    dx_chunk: &mut [f32],
    par: Parallelism,
) {
    let g = &plan.geometry;
    let (pixels, taps) = (g.output_pixels(), plan.taps_per_group());
    let images = dx_chunk.len() / plan.input_len;
    let columns = images * pixels;
    let desc = GemmDesc {
        trans_a: Transpose::Yes,
        a: MatrixLayout::row_major(taps),
        ..GemmDesc::row_major(taps, columns, plan.kg)
    };
    let group_len = plan.cg * g.input_pixels();
    for group in 0..plan.desc.groups {
        let w_group = &w[group * plan.group_weight_len()..][..plan.group_weight_len()];
        let gemm = |dy_group: &[f32], out: &mut [f32]| {
            sgemm_on(
                isa,
                &desc,
                w_group,
                dy_group,
                out,
                &Epilogue::default(),
                par,
            )
            .expect("shapes derived from a validated plan");
        };
        let dy_rows = group * plan.kg * pixels..(group + 1) * plan.kg * pixels;
        if images == 1 && g.is_pointwise() {
            gemm(
                &dy_chunk[dy_rows],
                &mut dx_chunk[group * group_len..][..group_len],
            );
            continue;
        }
        with_buffer(Buffer::Columns, taps * columns, |dcol| {
            if images == 1 {
                gemm(&dy_chunk[dy_rows], dcol);
            } else {
                with_buffer(Buffer::Staging, plan.kg * columns, |staged| {
                    gather_nchw_rows(dy_chunk, plan.output_len, dy_rows, pixels, staged);
                    gemm(staged, dcol);
                });
            }
            for (j, dx_image) in dx_chunk.chunks_exact_mut(plan.input_len).enumerate() {
                dx_image[group * group_len..][..group_len].fill(0.0);
                let block = ColumnBlock {
                    row_stride: columns,
                    offset: j * pixels,
                };
                col2im_nchw(g, dcol, block, (group * plan.cg, plan.cg), dx_image);
            }
        });
    }
}

/// A chunk of NHWC images (one tall matrix of pixels): per group,
/// `dcol (images·pixels × R·S·cg) = dY[:, g] · W'_g`, then col2im into each image.
fn backward_chunk_nhwc(
    isa: Isa,
    plan: &Plan,
    dy_chunk: &[f32],
    ohwi: &[f32],
    dx_chunk: &mut [f32],
    par: Parallelism,
) {
    let g = &plan.geometry;
    let (pixels, taps) = (g.output_pixels(), plan.taps_per_group());
    let rows = (dx_chunk.len() / plan.input_len) * pixels;
    let (channels, out_channels) = (plan.desc.in_channels, plan.desc.out_channels);
    let desc = GemmDesc {
        a: MatrixLayout::row_major(out_channels),
        ..GemmDesc::row_major(rows, taps, plan.kg)
    };
    if !g.is_pointwise() {
        dx_chunk.fill(0.0);
    }
    for group in 0..plan.desc.groups {
        let w_group = &ohwi[group * plan.group_weight_len()..][..plan.group_weight_len()];
        let dy_group = &dy_chunk[group * plan.kg..];
        if g.is_pointwise() {
            // dX is pixels × channels: write this group's columns in place.
            let direct = GemmDesc {
                c: MatrixLayout::row_major(channels),
                ..desc
            };
            let dx_group = &mut dx_chunk[group * plan.cg..];
            sgemm_on(
                isa,
                &direct,
                dy_group,
                w_group,
                dx_group,
                &Epilogue::default(),
                par,
            )
            .expect("shapes derived from a validated plan");
            continue;
        }
        with_buffer(Buffer::Columns, rows * taps, |dcol| {
            sgemm_on(
                isa,
                &desc,
                dy_group,
                w_group,
                dcol,
                &Epilogue::default(),
                par,
            )
            .expect("shapes derived from a validated plan");
            for (dx_image, dcol_rows) in dx_chunk
                .chunks_exact_mut(plan.input_len)
                .zip(dcol.chunks_exact_mut(pixels * taps))
            {
                col2im_nhwc(g, dcol_rows, (group * plan.cg, plan.cg, channels), dx_image);
            }
        });
    }
}
