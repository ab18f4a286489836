//! Backward-weights: `dW = Σ dY · col(X)ᵀ` per group over chunks of images, and the bias
//! gradient.
//!
//! The sum over the batch is a reduction, so it is never split among threads: chunks are
//! added one after the other in batch order (their size depends on the shapes only),
//! each product threaded over the rows and columns of dW.

use super::direct_c1::OutputGradient;
use super::im2col::{im2col_nchw, im2col_nhwc, ohwi_to_oihw, ColumnBlock};
use super::{direct_c1, gather_nchw_rows, relayout, winograd, Conv2dDesc, Plan};
use crate::arch::Isa;
use crate::error::{check_exact, Result};
use crate::gemm::{sgemm_on, Epilogue, GemmDesc, MatrixLayout, Transpose};
use crate::parallel::{for_each_chunk_mut, Parallelism};
use crate::workspace::{with_buffer, Buffer};
use crate::workspace::{with_f32s, with_f64s};

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
    if desc.batch > 0 && direct_c1::applies(&plan) {
        let grad = OutputGradient {
            dy,
            relu_output: None,
        };
        direct_c1::backward_weights(isa, &plan, x, grad, dw, db, par);
        return Ok(());
    }
    if desc.batch > 0 && relayout::applies(&plan) && !winograd::applies_backward_weights(&plan) {
        return relayout::backward_weights(isa, &plan, x, dy, dw, db, par);
    }
    if let Some(db) = db {
        bias_gradient(&plan, dy, db, par);
    }
    if desc.batch == 0 {
        dw.fill(0.0);
    } else if winograd::applies_backward_weights(&plan) {
        winograd::backward_weights(isa, &plan, x, dy, dw, par);
    } else if plan.nchw() {
        weights_nchw(isa, &plan, x, dy, dw, par);
    } else {
        with_buffer(Buffer::Weights, dw.len(), |ohwi| {
            weights_nhwc(isa, &plan, x, dy, ohwi, par);
            ohwi_to_oihw(ohwi, (desc.out_channels, plan.cg, plan.geometry.taps()), dw);
        });
    }
    Ok(())
}

/// Backward-weights of `y = relu(conv(x, w) + bias)` from `dy = ∂L/∂y`: the gradient
/// reaching the convolution is dy where y > 0 and 0 elsewhere (PyTorch's ReLU backward
/// from its output). For a first layer, whose input needs no gradient, this replaces
/// a pass of [`bias_activation_backward_in_place`](crate::eltwise::bias_activation_backward_in_place)
/// followed by [`conv2d_backward_weights`]: the one-channel direct kernels mask dy as they
/// read it. Shapes as in [`conv2d_backward_weights`], with `y` shaped like `dy`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_weights_relu(
    desc: &Conv2dDesc,
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    par: Parallelism,
) -> Result<()> {
    conv2d_backward_weights_relu_on(Isa::selected()?, desc, x, y, dy, dw, db, par)
}

/// [`conv2d_backward_weights_relu`] on an explicit ISA path.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_weights_relu_on(
    isa: Isa,
    desc: &Conv2dDesc,
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    par: Parallelism,
) -> Result<()> {
    isa.check_available()?;
    par.validate()?;
    let plan = Plan::new(desc, x.len(), dw.len(), dy.len())?;
    check_exact("conv2d relu output y", dy.len(), y.len())?;
    if let Some(db) = &db {
        check_exact("conv2d bias gradient db", desc.out_channels, db.len())?;
    }
    if desc.batch > 0 && direct_c1::applies(&plan) {
        let grad = OutputGradient {
            dy,
            relu_output: Some(y),
        };
        direct_c1::backward_weights(isa, &plan, x, grad, dw, db, par);
        return Ok(());
    }
    with_f32s(dy.len(), 0.0, |dz| {
        for ((z, &d), &v) in dz.iter_mut().zip(dy).zip(y) {
            *z = if v > 0.0 { d } else { 0.0 };
        }
        conv2d_backward_weights_on(isa, desc, x, dz, dw, db, par)
    })
}

/// The images of each chunk, in batch order: (first image, images).
fn chunks(plan: &Plan) -> impl Iterator<Item = (usize, usize)> + '_ {
    let b = plan.images_per_weight_chunk;
    (0..plan.desc.batch)
        .step_by(b)
        .map(move |n0| (n0, b.min(plan.desc.batch - n0)))
}

/// NCHW: per group, `dW_g (kg × cg·R·S) += dY_g (kg × images·pixels) · col_gᵀ`.
fn weights_nchw(isa: Isa, plan: &Plan, x: &[f32], dy: &[f32], dw: &mut [f32], par: Parallelism) {
    let g = &plan.geometry;
    let (pixels, taps) = (g.output_pixels(), plan.taps_per_group());
    for (n0, images) in chunks(plan) {
        let x_chunk = &x[n0 * plan.input_len..][..images * plan.input_len];
        let dy_chunk = &dy[n0 * plan.output_len..][..images * plan.output_len];
        let columns = images * pixels;
        let desc = GemmDesc {
            trans_b: Transpose::Yes,
            b: MatrixLayout::row_major(columns),
            ..GemmDesc::row_major(plan.kg, taps, columns)
        };
        let accumulate = Epilogue::default().beta(if n0 == 0 { 0.0 } else { 1.0 });
        for (group, dw_group) in dw.chunks_exact_mut(plan.group_weight_len()).enumerate() {
            let dy_rows = group * plan.kg * pixels..(group + 1) * plan.kg * pixels;
            let gemm = |dy_group: &[f32], col: &[f32], dw_group: &mut [f32]| {
                sgemm_on(isa, &desc, dy_group, col, dw_group, &accumulate, par)
                    .expect("shapes derived from a validated plan");
            };
            if images == 1 && g.is_pointwise() {
                let x_group = &x_chunk[group * taps * pixels..][..taps * pixels];
                gemm(&dy_chunk[dy_rows], x_group, dw_group);
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
                    gemm(&dy_chunk[dy_rows], col, dw_group);
                } else {
                    with_buffer(Buffer::Staging, plan.kg * columns, |staged| {
                        gather_nchw_rows(dy_chunk, plan.output_len, dy_rows, pixels, staged);
                        gemm(staged, col, dw_group);
                    });
                }
            });
        }
    }
}

/// NHWC: per group, `dW'_g (kg × R·S·cg) += dY[:, g]ᵀ (kg × images·pixels) · col_g`, in
/// OHWI order.
fn weights_nhwc(isa: Isa, plan: &Plan, x: &[f32], dy: &[f32], ohwi: &mut [f32], par: Parallelism) {
    let g = &plan.geometry;
    let (pixels, taps) = (g.output_pixels(), plan.taps_per_group());
    let (channels, out_channels) = (plan.desc.in_channels, plan.desc.out_channels);
    for (n0, images) in chunks(plan) {
        let x_chunk = &x[n0 * plan.input_len..][..images * plan.input_len];
        let dy_chunk = &dy[n0 * plan.output_len..][..images * plan.output_len];
        let rows = images * pixels;
        let desc = GemmDesc {
            trans_a: Transpose::Yes,
            a: MatrixLayout::row_major(out_channels),
            ..GemmDesc::row_major(plan.kg, taps, rows)
        };
        let accumulate = Epilogue::default().beta(if n0 == 0 { 0.0 } else { 1.0 });
        for (group, dw_group) in ohwi.chunks_exact_mut(plan.group_weight_len()).enumerate() {
            let dy_group = &dy_chunk[group * plan.kg..];
            if g.is_pointwise() {
                let direct = GemmDesc {
                    b: MatrixLayout::row_major(channels),
                    ..desc
                };
                let x_group = &x_chunk[group * plan.cg..];
                sgemm_on(isa, &direct, dy_group, x_group, dw_group, &accumulate, par)
                    .expect("shapes derived from a validated plan");
                continue;
            }
            with_buffer(Buffer::Columns, rows * taps, |col| {
                // Each image's rows of the column matrix are its own: threads fill them
                // side by side (the sum over the chunk stays inside the GEMM).
                for_each_chunk_mut(par, col, pixels * taps, |i, col_rows| {
                    let image = &x_chunk[i * plan.input_len..(i + 1) * plan.input_len];
                    im2col_nhwc(g, image, (group * plan.cg, plan.cg, channels), col_rows);
                });
                sgemm_on(isa, &desc, dy_group, col, dw_group, &accumulate, par)
                    .expect("shapes derived from a validated plan");
            });
        }
    }
}

/// `db[k] = Σ over images and pixels of dy[n, k, ·]`. Each image's part is summed in
/// f32 with eight independent lanes (fast, and accurate over one image's pixels) and the
/// parts are added in f64 in batch order; channels are split among threads, so every
/// value is summed the same way for any thread count.
fn bias_gradient(plan: &Plan, dy: &[f32], db: &mut [f32], par: Parallelism) {
    let pixels = plan.geometry.output_pixels();
    let channels = plan.desc.out_channels;
    let nchw = plan.nchw();
    let chunk = channels.div_ceil(par.threads()).max(1);
    for_each_chunk_mut(par, db, chunk, |part, db_part| {
        let k0 = part * chunk;
        // Per-thread reused tables: no allocation per call.
        with_f64s(db_part.len(), 0.0, |totals| {
            with_f32s(db_part.len(), 0.0, |lanes| {
                for image in dy.chunks_exact(plan.output_len) {
                    if nchw {
                        for (total, k) in totals.iter_mut().zip(k0..) {
                            *total += f64::from(sum_lanes(&image[k * pixels..(k + 1) * pixels]));
                        }
                    } else {
                        // Pixels are rows of `channels`: add this part's columns row by row.
                        lanes.fill(0.0);
                        for row in image.chunks_exact(channels) {
                            for (acc, &v) in lanes.iter_mut().zip(&row[k0..k0 + db_part.len()]) {
                                *acc += v;
                            }
                        }
                        for (total, &sum) in totals.iter_mut().zip(lanes.iter()) {
                            *total += f64::from(sum);
                        }
                    }
                }
            });
            for (out, total) in db_part.iter_mut().zip(totals.iter()) {
                *out = *total as f32;
            }
        });
    });
}

/// Σ values with eight independent accumulators.
fn sum_lanes(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut blocks = values.chunks_exact(8);
    for block in &mut blocks {
        for (acc, &v) in lanes.iter_mut().zip(block) {
            *acc += v;
        }
    }
    let tail: f32 = blocks.remainder().iter().sum();
    lanes.iter().sum::<f32>() + tail
}
