//! Backward-weights: `dW = Σₙ dYₙ · col(Xₙ)ᵀ` per group, and the bias gradient.
//!
//! The sum over the batch is a reduction, so it is never split among threads: images
//! are added one after the other in batch order, each product threaded over the rows
//! and columns of dW (output channels × taps).

use super::im2col::{im2col_nchw, im2col_nhwc, ohwi_to_oihw};
use super::{Conv2dDesc, Plan};
use crate::arch::Isa;
use crate::error::{check_exact, Result};
use crate::gemm::{sgemm_on, Epilogue, GemmDesc, MatrixLayout, Transpose};
use crate::parallel::{for_each_chunk_mut, Parallelism};
use crate::workspace::{with_buffer, Buffer};

/// `dw = ∂L/∂w` (OIHW, overwritten) and, when asked, `db = ∂L/∂bias` (`out_channels`
/// values, overwritten) from the input `x` and `dy = ∂L/∂y`, on the process's ISA path.
pub fn conv2d_backward_weights(
    desc: &Conv2dDesc,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    par: Parallelism,
) -> Result<()> {
    conv2d_backward_weights_on(Isa::selected()?, desc, x, dy, dw, db, par)
}

/// [`conv2d_backward_weights`] on an explicit ISA path.
pub fn conv2d_backward_weights_on(
    isa: Isa,
    desc: &Conv2dDesc,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    par: Parallelism,
) -> Result<()> {
    isa.check_available()?;
    par.validate()?;
    let plan = Plan::new(desc, x.len(), dw.len(), dy.len())?;
    if let Some(db) = &db {
        check_exact("conv2d bias gradient db", desc.out_channels, db.len())?;
    }
    if let Some(db) = db {
        bias_gradient(&plan, dy, db, par);
    }
    if plan.nchw() {
        weights_nchw(isa, &plan, x, dy, dw, par);
    } else {
        with_buffer(Buffer::Weights, dw.len(), |ohwi| {
            weights_nhwc(isa, &plan, x, dy, ohwi, par);
            ohwi_to_oihw(ohwi, (desc.out_channels, plan.cg, plan.geometry.taps()), dw);
        });
    }
    Ok(())
}

/// NCHW: per group, `dW_g (kg × cg·R·S) += dY_g (kg × pixels) · col_gᵀ`, image by image.
fn weights_nchw(isa: Isa, plan: &Plan, x: &[f32], dy: &[f32], dw: &mut [f32], par: Parallelism) {
    let g = &plan.geometry;
    let (pixels, taps) = (g.output_pixels(), plan.taps_per_group());
    let desc = GemmDesc {
        trans_b: Transpose::Yes,
        b: MatrixLayout::row_major(pixels),
        ..GemmDesc::row_major(plan.kg, taps, pixels)
    };
    if plan.desc.batch == 0 {
        dw.fill(0.0);
    }
    for n in 0..plan.desc.batch {
        let x_image = &x[n * plan.input_len..][..plan.input_len];
        let dy_image = &dy[n * plan.output_len..][..plan.output_len];
        let accumulate = Epilogue::default().beta(if n == 0 { 0.0 } else { 1.0 });
        for (group, dw_group) in dw.chunks_exact_mut(plan.group_weight_len()).enumerate() {
            let dy_group = &dy_image[group * plan.kg * pixels..][..plan.kg * pixels];
            let run = |col: &[f32], dw_group: &mut [f32]| {
                sgemm_on(isa, &desc, dy_group, col, dw_group, &accumulate, par)
                    .expect("shapes derived from a validated plan");
            };
            if g.is_pointwise() {
                run(
                    &x_image[group * plan.cg * pixels..][..plan.cg * pixels],
                    dw_group,
                );
            } else {
                with_buffer(Buffer::Columns, plan.col_len, |col| {
                    im2col_nchw(g, x_image, group * plan.cg, plan.cg, col);
                    run(col, dw_group);
                });
            }
        }
    }
}

/// NHWC: per group, `dW'_g (kg × R·S·cg) += dY[:, g]ᵀ (kg × pixels) · col_g`, image by
/// image, in OHWI order.
fn weights_nhwc(isa: Isa, plan: &Plan, x: &[f32], dy: &[f32], ohwi: &mut [f32], par: Parallelism) {
    let g = &plan.geometry;
    let (pixels, taps) = (g.output_pixels(), plan.taps_per_group());
    let (channels, out_channels) = (plan.desc.in_channels, plan.desc.out_channels);
    let desc = GemmDesc {
        trans_a: Transpose::Yes,
        a: MatrixLayout::row_major(out_channels),
        ..GemmDesc::row_major(plan.kg, taps, pixels)
    };
    if plan.desc.batch == 0 {
        ohwi.fill(0.0);
    }
    for n in 0..plan.desc.batch {
        let x_image = &x[n * plan.input_len..][..plan.input_len];
        let dy_image = &dy[n * plan.output_len..][..plan.output_len];
        let accumulate = Epilogue::default().beta(if n == 0 { 0.0 } else { 1.0 });
        for (group, dw_group) in ohwi.chunks_exact_mut(plan.group_weight_len()).enumerate() {
            let dy_group = &dy_image[group * plan.kg..];
            if g.is_pointwise() {
                let direct = GemmDesc {
                    b: MatrixLayout::row_major(channels),
                    ..desc
                };
                sgemm_on(
                    isa,
                    &direct,
                    dy_group,
                    &x_image[group * plan.cg..],
                    dw_group,
                    &accumulate,
                    par,
                )
                .expect("shapes derived from a validated plan");
            } else {
                with_buffer(Buffer::Columns, plan.col_len, |col| {
                    im2col_nhwc(g, x_image, (group * plan.cg, plan.cg, channels), col);
                    sgemm_on(isa, &desc, dy_group, col, dw_group, &accumulate, par)
                        .expect("shapes derived from a validated plan");
                });
            }
        }
    }
}

/// `db[k] = Σ over images and pixels of dy[n, k, ·]`, summed in f64 in batch order; the
/// channels are split among threads.
fn bias_gradient(plan: &Plan, dy: &[f32], db: &mut [f32], par: Parallelism) {
    let pixels = plan.geometry.output_pixels();
    let channels = plan.desc.out_channels;
    let nchw = plan.nchw();
    let chunk = channels.div_ceil(par.threads()).max(1);
    for_each_chunk_mut(par, db, chunk, |part, db_part| {
        for (i, out) in db_part.iter_mut().enumerate() {
            let k = part * chunk + i;
            let mut sum = 0.0f64;
            for image in dy.chunks_exact(plan.output_len) {
                if nchw {
                    sum += image[k * pixels..(k + 1) * pixels]
                        .iter()
                        .map(|&v| f64::from(v))
                        .sum::<f64>();
                } else {
                    sum += image[k..]
                        .iter()
                        .step_by(channels)
                        .map(|&v| f64::from(v))
                        .sum::<f64>();
                }
            }
            *out = sum as f32;
        }
    });
}
