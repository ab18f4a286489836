//! Backward-data: the gradient of the input, `dX = col2im(Wᵀ · dY)` per image and group.

use super::im2col::{col2im_nchw, col2im_nhwc, oihw_to_ohwi};
use super::{Conv2dDesc, Plan};
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
    let (image_par, gemm_par) = plan.split(par);
    if plan.nchw() {
        for_each_chunk_mut(image_par, dx, plan.input_len, |n, dx_image| {
            let dy_image = &dy[n * plan.output_len..(n + 1) * plan.output_len];
            backward_image_nchw(isa, &plan, dy_image, w, dx_image, gemm_par);
        });
    } else {
        with_buffer(Buffer::Weights, w.len(), |ohwi| {
            oihw_to_ohwi(w, (desc.out_channels, plan.cg, plan.geometry.taps()), ohwi);
            let ohwi = &*ohwi;
            for_each_chunk_mut(image_par, dx, plan.input_len, |n, dx_image| {
                let dy_image = &dy[n * plan.output_len..(n + 1) * plan.output_len];
                backward_image_nhwc(isa, &plan, dy_image, ohwi, dx_image, gemm_par);
            });
        });
    }
    Ok(())
}

/// One NCHW image: per group, `dcol (cg·R·S × pixels) = W_gᵀ · dY_g`, then col2im.
fn backward_image_nchw(
    isa: Isa,
    plan: &Plan,
    dy_image: &[f32],
    w: &[f32],
    dx_image: &mut [f32],
    par: Parallelism,
) {
    let g = &plan.geometry;
    let (pixels, taps) = (g.output_pixels(), plan.taps_per_group());
    let in_pixels = g.input_pixels();
    let desc = GemmDesc {
        trans_a: Transpose::Yes,
        a: MatrixLayout::row_major(taps),
        ..GemmDesc::row_major(taps, pixels, plan.kg)
    };
    for (group, dx_group) in dx_image.chunks_exact_mut(plan.cg * in_pixels).enumerate() {
        let w_group = &w[group * plan.group_weight_len()..][..plan.group_weight_len()];
        let dy_group = &dy_image[group * plan.kg * pixels..][..plan.kg * pixels];
        let run = |out: &mut [f32]| {
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
        if g.is_pointwise() {
            run(dx_group);
        } else {
            with_buffer(Buffer::Columns, plan.col_len, |dcol| {
                run(dcol);
                dx_group.fill(0.0);
                col2im_nchw(g, dcol, 0, plan.cg, dx_group);
            });
        }
    }
}

/// One NHWC image: per group, `dcol (pixels × R·S·cg) = dY[:, g] · W'_g`, then col2im.
fn backward_image_nhwc(
    isa: Isa,
    plan: &Plan,
    dy_image: &[f32],
    ohwi: &[f32],
    dx_image: &mut [f32],
    par: Parallelism,
) {
    let g = &plan.geometry;
    let (pixels, taps) = (g.output_pixels(), plan.taps_per_group());
    let (channels, out_channels) = (plan.desc.in_channels, plan.desc.out_channels);
    let desc = GemmDesc {
        a: MatrixLayout::row_major(out_channels),
        ..GemmDesc::row_major(pixels, taps, plan.kg)
    };
    if !g.is_pointwise() {
        dx_image.fill(0.0);
    }
    for group in 0..plan.desc.groups {
        let w_group = &ohwi[group * plan.group_weight_len()..][..plan.group_weight_len()];
        let dy_group = &dy_image[group * plan.kg..];
        if g.is_pointwise() {
            // dX is pixels × channels: write this group's columns in place.
            let direct = GemmDesc {
                c: MatrixLayout::row_major(channels),
                ..desc
            };
            let dx_group = &mut dx_image[group * plan.cg..];
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
        } else {
            with_buffer(Buffer::Columns, plan.col_len, |dcol| {
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
                col2im_nhwc(g, dcol, (group * plan.cg, plan.cg, channels), dx_image);
            });
        }
    }
}
