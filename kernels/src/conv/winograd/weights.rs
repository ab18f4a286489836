//! The weight gradient by F(4×4, 3×3), transposed.
//!
//! An output tile is `Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ D B)]A`, linear in the filter g, so the
//! filter's gradient from that tile is the adjoint: `Gᵀ[(Bᵀ D B) ⊙ (A dY Aᵀ)]G`. Summed
//! over all tiles, the products become, for each of the 36 points, one GEMM that sums
//! over the tiles: `Ŵ (C × K) += Vᵀ (C × tiles) · Z (tiles × K)`, V the input tiles
//! transformed as in the forward and Z the 4×4 output-gradient tiles (zero past the
//! output's edge) transformed by A. One back-transform per filter ends it.
//!
//! The sum over the batch runs block after block of images, blocks cut from the shape
//! alone, and each point's GEMM sums its block in a fixed order: threads split the
//! transforms by image and the GEMMs by point, so results are bitwise the same for every
//! thread count.

use super::transform::{self, gradient, rows_then_columns, ALPHA, POINTS, TAPS, TILE};
use super::{input_tiles, inside, Problem, Tiling};
use crate::arch::Isa;
use crate::conv::relayout::as_nhwc;
use crate::conv::Plan;
use crate::eltwise::dispatch::lanes_dispatch;
use crate::eltwise::lanes::{load_n, store_n, Lanes};
use crate::gemm::{sgemm_on, Epilogue, GemmDesc, MatrixLayout, Transpose};
use crate::parallel::{for_each_chunk_mut, Parallelism};
use crate::workspace::{with_buffer, with_f32s, Buffer};

/// Tiles a block aims for: the depth of each of its 36 GEMMs.
const TARGET_TILES: usize = 288;

/// dw = ∂L/∂w (OIHW, overwritten) from x and dy, for a call whose forward
/// [applies](super::applies_backward_weights).
pub(in crate::conv) fn backward_weights(
    isa: Isa,
    plan: &Plan,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    par: Parallelism,
) {
    let p = problem(plan);
    let (c, k) = (p.channels, p.out_channels);
    let per_image = p.tiles_per_image();
    let images = images_per_block(&p);
    with_buffer(Buffer::Weights, POINTS * c * k, |sums| {
        for n0 in (0..p.batch).step_by(images) {
            let count = images.min(p.batch - n0);
            let tiles = count * per_image;
            let x_block = &x[n0 * p.input_len()..][..count * p.input_len()];
            let dy_block = &dy[n0 * p.output_len()..][..count * p.output_len()];
            with_buffer(Buffer::Columns, tiles * POINTS * c, |v| {
                with_buffer(Buffer::Staging, tiles * POINTS * k, |z| {
                    let (v, z) = (&mut v[..tiles * POINTS * c], &mut z[..tiles * POINTS * k]);
                    for_each_chunk_mut(par, v, per_image * POINTS * c, |j, v_image| {
                        let image = &x_block[j * p.input_len()..][..p.input_len()];
                        let planes = (Buffer::Relayout, c, p.input_pixels());
                        as_nhwc(p.layout, planes, image, Parallelism::Sequential, |image| {
                            input_tiles(isa, &p, image, v_image)
                        });
                    });
                    for_each_chunk_mut(par, z, per_image * POINTS * k, |j, z_image| {
                        let image = &dy_block[j * p.output_len()..][..p.output_len()];
                        let planes = (Buffer::Relayout, k, p.output_pixels());
                        as_nhwc(p.layout, planes, image, Parallelism::Sequential, |image| {
                            gradient_tiles(isa, &p, image, z_image)
                        });
                    });
                    let (v, z) = (&*v, &*z);
                    // Point ξ: Vᵀ from every tile's ξ-th row of C values, Z likewise.
                    let desc = GemmDesc {
                        trans_a: Transpose::Yes,
                        a: MatrixLayout::row_major(POINTS * c),
                        b: MatrixLayout::row_major(POINTS * k),
                        ..GemmDesc::row_major(c, k, tiles)
                    };
                    let accumulate = Epilogue::default().beta(if n0 == 0 { 0.0 } else { 1.0 });
                    let last = |width: usize| (tiles - 1) * POINTS * width + width;
                    for_each_chunk_mut(par, sums, c * k, |point, sum| {
                        let v = &v[point * c..][..last(c)];
                        let z = &z[point * k..][..last(k)];
                        sgemm_on(isa, &desc, v, z, sum, &accumulate, Parallelism::Sequential)
                            .expect("shapes derived from a validated plan");
                    });
                });
            });
        }
        to_filters(isa, sums, c, k, dw);
    });
}

/// The forward of `plan`, its output covered by tiles (past its edges, dy is zero).
fn problem(plan: &Plan) -> Problem {
    Problem {
        tiling: Tiling::Covering,
        ..Problem::forward(plan)
    }
}

/// Images per block: enough for [`TARGET_TILES`], from the shape alone.
fn images_per_block(p: &Problem) -> usize {
    TARGET_TILES
        .div_ceil(p.tiles_per_image())
        .clamp(1, p.batch.max(1))
}

/// Floats of the buffers [`backward_weights`] keeps: a block's transformed input and
/// output-gradient tiles, the 36 sums, and for NCHW an image in NHWC.
pub(super) fn workspace_len(plan: &Plan) -> usize {
    let p = problem(plan);
    let tiles = images_per_block(&p) * p.tiles_per_image();
    POINTS * (tiles * (p.channels + p.out_channels) + p.channels * p.out_channels)
        + p.relayout_len()
}

/// `dw` (OIHW) from the 36 transformed sums (`C × K` each): Gᵀ Ŵ G per filter, a
/// vector of output channels at a time into a tap-major `C × K` matrix per tap, then
/// reordered.
fn to_filters(isa: Isa, sums: &[f32], c: usize, k: usize, dw: &mut [f32]) {
    with_f32s(TAPS * TAPS * c * k, 0.0, |taps| {
        filter_gradients_on(isa, sums, (c, k), taps);
        for (o, filters) in dw.chunks_exact_mut(c * TAPS * TAPS).enumerate() {
            for (i, g) in filters.chunks_exact_mut(TAPS * TAPS).enumerate() {
                for (tap, slot) in g.iter_mut().enumerate() {
                    *slot = taps[(tap * c + i) * k + o];
                }
            }
        }
    });
}

lanes_dispatch! {
    /// [`filter_gradients`] on the lanes of `isa`.
    fn filter_gradients_on(sums: &[f32], channels: (usize, usize), taps: &mut [f32]) => filter_gradients
}

/// The 36 transformed sums (point-major `C × K` matrices) back to 9 tap-major ones.
#[inline(always)]
fn filter_gradients<L: Lanes>(sums: &[f32], channels: (usize, usize), taps: &mut [f32]) {
    let back = transform::filter_gradient_tile;
    transform::transform_matrices::<L, ALPHA, TAPS>(sums, channels, taps, back);
}

lanes_dispatch! {
    /// [`gradient_tiles_kernel`] on `isa`.
    fn gradient_tiles(p: &Problem, dy: &[f32], z: &mut [f32]) => gradient_tiles_kernel
}

/// Every 4×4 output-gradient tile of the images `dy`, zero past the output's edge,
/// transformed by A: point ξ of tile t, channel k at `z[(t·36 + ξ)·K + k]`.
#[inline(always)]
fn gradient_tiles_kernel<L: Lanes>(p: &Problem, dy: &[f32], z: &mut [f32]) {
    let [down, across] = p.tiles();
    let [height, width] = p.output;
    let k = p.out_channels;
    for (n, image) in dy.chunks_exact(p.output_len()).enumerate() {
        for ti in 0..down {
            for tj in 0..across {
                let t = (n * down + ti) * across + tj;
                for k0 in (0..k).step_by(L::LANES) {
                    let lanes = L::LANES.min(k - k0);
                    let zero = L::splat(0.0);
                    let transformed = rows_then_columns!(
                        |a| {
                            let mut row = [zero; TILE];
                            if let Some(h) = inside(ti * TILE + a, 0, height) {
                                for (b, value) in row.iter_mut().enumerate() {
                                    if let Some(w) = inside(tj * TILE + b, 0, width) {
                                        *value = load_n(image, (h * width + w) * k + k0, lanes);
                                    }
                                }
                            }
                            row
                        },
                        gradient,
                        TILE => ALPHA
                    );
                    for (point, &value) in transformed.iter().flatten().enumerate() {
                        store_n(value, z, (t * POINTS + point) * k + k0, lanes);
                    }
                }
            }
        }
    }
}
