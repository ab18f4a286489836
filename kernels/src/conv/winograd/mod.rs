//! Winograd's F(4×4, 3×3) for 3×3, stride-1 convolutions: the forward, the
//! backward-data (a 3×3 stride-1 correlation too, of the padded output gradient with
//! the flipped filters) and the backward-weights (`weights.rs`), at a quarter of the
//! direct method's multiplications.
//!
//! Per block of images: every 6×6 input tile (overlapping by 2, zero outside the image)
//! goes to the transformed domain, channels innermost; then for each of the 36 points,
//! one GEMM `M (tiles × K) = V (tiles × C) · U (C × K)` with the filters transformed once
//! per call; then each tile's 36 products go back to a 4×4 output tile, plus the bias,
//! and the block gets its activation while it is in cache. Where whole tiles inside the
//! output serve it better than tiles covering it past its edges (13×13: 85% against
//! 66%), the strips they leave are computed pixel by pixel as one im2col GEMM per block
//! ([`Tiling`]). Measured on conv2's backward-data (13×13), 1 thread, NHWC: 3.5–3.7 ms
//! with im2col, 2.7–3.0 ms this way. Blocks are whole images and every output goes
//! through the same arithmetic whatever the block, so results are bitwise the same for
//! every thread count.
//!
//! Accuracy: the transforms scale values by up to 8×8 on the way out, so an output's
//! rounding error follows the size of the values in its tile rather than its own size.
//! The tests hold it to the im2col path's bound (relative to the sum of the |products|,
//! on random data) and, against PyTorch, to 1e-5 of the tensor's largest value.

mod transform;
mod weights;

pub(super) use weights::backward_weights;

use super::relayout::{as_nhwc, written_as_nhwc};
use super::Plan;
use crate::arch::Isa;
use crate::eltwise::dispatch::lanes_dispatch;
use crate::eltwise::lanes::{load_n, store_n, Lanes};
use crate::eltwise::{activate_slice_on, Activation};
use crate::gemm::{sgemm_on, Bias, Epilogue, GemmDesc, MatrixLayout};
use crate::layout::Layout;
use crate::parallel::{for_each_chunk_mut, Parallelism};
use crate::workspace::{with_buffer, with_f32s, Buffer};
use std::convert::Infallible;
use transform::{input, output, rows_then_columns, ALPHA, POINTS, TAPS, TILE};

/// Taps of a filter: a border pixel's window holds this many pixels.
const WINDOW: usize = TAPS * TAPS;

/// Tiles a block aims for: the rows of each of its 36 GEMMs.
const TARGET_TILES: usize = 144;

/// Below this many channels on either side, the im2col GEMM (whose reduction is 9·C
/// deep) keeps its units busier than 36 GEMMs C deep.
const MIN_CHANNELS: usize = 16;

/// Below this share of useful outputs in the work of the tiles (11×11 covered by 3×3
/// tiles: 84%; 5×5 by 2×2: 39%), the tiles' wasted work and the transforms cost more
/// than the quarter of the multiplications saves. Measured on the seed CNN's layers,
/// 1 thread: 84% runs 2.1× faster than im2col, 66% the same, 56% and below slower.
const MIN_USEFUL_SHARE: f64 = 0.75;

/// How the 4×4 tiles lie on an output.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tiling {
    /// Tiles cover the whole output; the last ones run past its edges and their values
    /// there are dropped.
    Covering,
    /// Only the whole tiles that fit inside the output; the strips they leave along its
    /// bottom and right edges (less than a tile wide) are computed pixel by pixel, each
    /// pixel's 3×3 window a row of one im2col GEMM. This is what serves a 13×13 output:
    /// covered, 66% of the tiles' work is useful; inside, 9 tiles hold 85% of it.
    Interior,
}

impl Tiling {
    /// The tiling whose useful share of the work is larger, if it reaches
    /// [`MIN_USEFUL_SHARE`]: for `Covering` the output's share of its tiles, for
    /// `Interior` the tiles' share of the output.
    fn of(output: [usize; 2]) -> Option<Tiling> {
        let pixels = |sides: [usize; 2]| (sides[0] * sides[1]) as f64;
        let covering = pixels(output) / pixels(Tiling::Covering.tiled(output)).max(1.0);
        let interior = pixels(Tiling::Interior.tiled(output)) / pixels(output).max(1.0);
        let (tiling, share) = if covering >= interior {
            (Tiling::Covering, covering)
        } else {
            (Tiling::Interior, interior)
        };
        (share >= MIN_USEFUL_SHARE).then_some(tiling)
    }

    /// Tiles down and across `output`.
    fn tiles(self, output: [usize; 2]) -> [usize; 2] {
        match self {
            Tiling::Covering => output.map(|side| side.div_ceil(TILE)),
            Tiling::Interior => output.map(|side| side / TILE),
        }
    }

    /// Rows and columns of `output` under the tiles.
    fn tiled(self, output: [usize; 2]) -> [usize; 2] {
        self.tiles(output).map(|tiles| tiles * TILE)
    }
}

/// Whether the forward of a call takes this path: 3×3, stride 1, no dilation, one
/// group, padding at most 2 (so that the backward-data's own padding, 2 − p, is
/// not negative), enough channels, and an output that its tiles serve well.
pub(super) fn applies_forward(plan: &Plan) -> bool {
    forward_tiling(plan).is_some()
}

/// [`applies_forward`] for the backward-data, whose output is the input's size.
pub(super) fn applies_backward_data(plan: &Plan) -> bool {
    tiling(plan, plan.desc.input).is_some()
}

/// Whether the backward-weights takes this path: where the forward's output is covered
/// by its tiles ([`weights`] has no border strips).
pub(super) fn applies_backward_weights(plan: &Plan) -> bool {
    forward_tiling(plan) == Some(Tiling::Covering)
}

fn forward_tiling(plan: &Plan) -> Option<Tiling> {
    tiling(plan, [plan.geometry.h.output, plan.geometry.w.output])
}

/// The tiling of `output`, for a call whose shape this path takes.
fn tiling(plan: &Plan, output: [usize; 2]) -> Option<Tiling> {
    let d = &plan.desc;
    let shape = d.kernel == [TAPS, TAPS]
        && d.stride == [1, 1]
        && d.dilation == [1, 1]
        && d.groups == 1
        && d.padding.iter().all(|&p| p < TAPS)
        && d.in_channels.min(d.out_channels) >= MIN_CHANNELS;
    Tiling::of(output).filter(|_| shape)
}

/// Floats of scratch memory one thread keeps for the passes of `plan` that take this
/// path (0 if none does).
pub(super) fn workspace_len(plan: &Plan) -> usize {
    let mut len = 0;
    if applies_forward(plan) {
        len = Problem::forward(plan).workspace_len();
    }
    if applies_backward_weights(plan) {
        len = len.max(weights::workspace_len(plan));
    }
    if applies_backward_data(plan) {
        len = len.max(Problem::backward_data(plan).workspace_len());
    }
    len
}

/// One 3×3 stride-1 correlation of a batch of images.
#[derive(Clone, Copy)]
struct Problem {
    /// Of the images read and written; the tile kernels work on NHWC, and NCHW images
    /// are moved to it and back a block at a time.
    layout: Layout,
    batch: usize,
    input: [usize; 2],
    channels: usize,
    output: [usize; 2],
    out_channels: usize,
    padding: [usize; 2],
    tiling: Tiling,
}

impl Problem {
    /// The forward of `plan`.
    fn forward(plan: &Plan) -> Problem {
        let d = &plan.desc;
        Problem {
            layout: d.layout,
            batch: d.batch,
            input: d.input,
            channels: d.in_channels,
            output: [plan.geometry.h.output, plan.geometry.w.output],
            out_channels: d.out_channels,
            padding: d.padding,
            // Where the forward does not take this path (the backward-weights' own
            // check), covering tiles still compute every output.
            tiling: forward_tiling(plan).unwrap_or(Tiling::Covering),
        }
    }

    /// The backward-data of `plan`: dy padded by 2 − p, correlated with the flipped
    /// filters.
    fn backward_data(plan: &Plan) -> Problem {
        let d = &plan.desc;
        Problem {
            layout: d.layout,
            batch: d.batch,
            input: [plan.geometry.h.output, plan.geometry.w.output],
            channels: d.out_channels,
            output: d.input,
            out_channels: d.in_channels,
            padding: d.padding.map(|p| TAPS - 1 - p),
            tiling: tiling(plan, d.input).unwrap_or(Tiling::Covering),
        }
    }

    /// Images per block of [`run`] on `threads` threads: enough for [`TARGET_TILES`],
    /// and at least one block per thread.
    fn images_per_block(&self, threads: usize) -> usize {
        TARGET_TILES
            .div_ceil(self.tiles_per_image())
            .min(self.batch.div_ceil(threads))
            .max(1)
    }

    /// Floats of the buffers [`run`] keeps on one thread: a block's transformed input
    /// tiles and products, the transformed filters, the border strips' windows and
    /// outputs and the filters for them, and for NCHW the block in NHWC.
    fn workspace_len(&self) -> usize {
        let images = self.images_per_block(1);
        let tiles = images * self.tiles_per_image();
        let border = images * self.border_pixels_per_image();
        let (c, k) = (self.channels, self.out_channels);
        POINTS * (tiles * (c + k) + c * k)
            + border * (WINDOW * c + k)
            + self.direct_filters_len()
            + images * self.relayout_len()
    }

    /// Floats of the filters as the border strips' GEMM reads them (none without strips).
    fn direct_filters_len(&self) -> usize {
        if self.border_pixels_per_image() == 0 {
            0
        } else {
            WINDOW * self.channels * self.out_channels
        }
    }

    /// Floats of one image moved to NHWC and back (NCHW only).
    fn relayout_len(&self) -> usize {
        match self.layout {
            Layout::Nhwc => 0,
            Layout::Nchw => self.input_len().max(self.output_len()),
        }
    }

    /// Output tiles down and across an image.
    fn tiles(&self) -> [usize; 2] {
        self.tiling.tiles(self.output)
    }

    /// Output pixels of an image that no tile computes.
    fn border_pixels_per_image(&self) -> usize {
        let [rows, columns] = self.tiling.tiled(self.output);
        let [height, width] = self.output;
        height * width - rows.min(height) * columns.min(width)
    }

    /// The (row, column) of every pixel of an image that no tile computes, row by row:
    /// the right strip beside the tiles, then the bottom strip under them.
    fn border_pixels(&self) -> impl Iterator<Item = (usize, usize)> {
        let [rows, columns] = self.tiling.tiled(self.output);
        let [height, width] = self.output;
        (0..height).flat_map(move |h| {
            let first = if h < rows { columns.min(width) } else { 0 };
            (first..width).map(move |w| (h, w))
        })
    }

    fn tiles_per_image(&self) -> usize {
        let [down, across] = self.tiles();
        down * across
    }

    fn input_pixels(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn output_pixels(&self) -> usize {
        self.output[0] * self.output[1]
    }

    fn input_len(&self) -> usize {
        self.input_pixels() * self.channels
    }

    fn output_len(&self) -> usize {
        self.output_pixels() * self.out_channels
    }
}

/// y = activation(conv(x, w) + bias) for a call that [`applies_forward`].
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    isa: Isa,
    plan: &Plan,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Parallelism,
) {
    let filters = Filters::of(plan, w, false);
    run(
        isa,
        &Problem::forward(plan),
        x,
        filters,
        bias,
        activation,
        y,
        par,
    );
}

/// dx = ∂L/∂x from dy for a call that [`applies_backward_data`]: the correlation of dy, padded by
/// 2 − p, with the filters flipped and their channel roles swapped.
pub(super) fn backward_data(
    isa: Isa,
    plan: &Plan,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    par: Parallelism,
) {
    let problem = Problem::backward_data(plan);
    let filters = Filters::of(plan, w, true);
    run(
        isa,
        &problem,
        dy,
        filters,
        None,
        Activation::Identity,
        dx,
        par,
    );
}

/// OIHW filters (`outputs × inputs × 3 × 3`), as the forward uses them or, `flipped`, as
/// the backward-data does: each turned by 180°, inputs and outputs swapped.
#[derive(Clone, Copy)]
struct Filters<'a> {
    w: &'a [f32],
    outputs: usize,
    inputs: usize,
    flipped: bool,
}

impl<'a> Filters<'a> {
    /// The filters `w` of `plan`, flipped for the backward-data.
    fn of(plan: &Plan, w: &'a [f32], flipped: bool) -> Self {
        Filters {
            w,
            outputs: plan.desc.out_channels,
            inputs: plan.desc.in_channels,
            flipped,
        }
    }

    /// Input and output channels of the correlation.
    fn channels(&self) -> (usize, usize) {
        if self.flipped {
            (self.outputs, self.inputs)
        } else {
            (self.inputs, self.outputs)
        }
    }

    /// The filters tap-major, as the border strips' im2col GEMM reads them and as
    /// [`transform_filters_on`] takes them: a row-major matrix with a row per tap and
    /// input channel (channels innermost, as in a window) and a column per output
    /// channel of the correlation.
    fn direct(&self, b: &mut [f32]) {
        let (inputs, outputs) = self.channels();
        for (o, filters) in self.w.chunks_exact(self.inputs * WINDOW).enumerate() {
            for (i, g) in filters.chunks_exact(WINDOW).enumerate() {
                // Flipped: inputs and outputs swap, and the 3×3 taps turn by 180°, so
                // tap t reads the filter's tap 8 − t.
                let (input, output) = if self.flipped { (o, i) } else { (i, o) };
                for tap in 0..WINDOW {
                    let value = if self.flipped {
                        g[WINDOW - 1 - tap]
                    } else {
                        g[tap]
                    };
                    b[(tap * inputs + input) * outputs + output] = value;
                }
            }
        }
    }
}

/// The tap-major filters `taps` ([`Filters::direct`]) of `inputs × outputs` channels
/// transformed into `u`: for each of the 36 points, a row-major matrix with a row per
/// input channel and a column per output channel of the correlation.
#[inline(always)]
fn transform_filters<L: Lanes>(taps: &[f32], channels: (usize, usize), u: &mut [f32]) {
    transform::transform_matrices::<L, TAPS, ALPHA>(taps, channels, u, transform::filter_tile);
}

lanes_dispatch! {
    /// [`transform_filters`] on the lanes of `isa`.
    fn transform_filters_on(taps: &[f32], channels: (usize, usize), u: &mut [f32]) => transform_filters
}

/// The correlation of `x` with the filters, plus the bias, then the activation, into
/// `y`; the filters are transformed once, then blocks of whole images spread over the
/// threads.
#[allow(clippy::too_many_arguments)]
fn run(
    isa: Isa,
    p: &Problem,
    x: &[f32],
    filters: Filters<'_>,
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Parallelism,
) {
    let per_image = p.tiles_per_image();
    let relu = activation == Activation::Relu;
    let images = p.images_per_block(par.threads());
    let (c, k) = (p.channels, p.out_channels);
    let transformed_len = POINTS * c * k;
    with_buffer(
        Buffer::Weights,
        transformed_len + p.direct_filters_len(),
        |u| {
            let (u, direct) = u.split_at_mut(transformed_len);
            // The transform reads the filters tap-major: from the border strips' copy
            // where there is one, from scratch otherwise.
            let mut transform = |taps: &mut [f32]| {
                filters.direct(taps);
                transform_filters_on(isa, taps, filters.channels(), u);
            };
            if direct.is_empty() {
                with_f32s(WINDOW * c * k, 0.0, transform);
            } else {
                transform(direct);
            }
            let (u, direct) = (&*u, &*direct);
            for_each_chunk_mut(par, y, images * p.output_len(), |i, y_block| {
                let count = y_block.len() / p.output_len();
                let x_block = &x[i * images * p.input_len()..][..count * p.input_len()];
                let tiles = count * per_image;
                let border = count * p.border_pixels_per_image();
                let (v_len, m_len) = (tiles * POINTS * c, tiles * POINTS * k);
                with_buffer(Buffer::Columns, v_len + border * WINDOW * c, |v| {
                    with_buffer(Buffer::Staging, m_len + border * k, |m| {
                        let (v, windows) = v.split_at_mut(v_len);
                        let (m, border_y) = m.split_at_mut(m_len);
                        let planes = (Buffer::Relayout, c, p.input_pixels());
                        let seq = Parallelism::Sequential;
                        as_nhwc(p.layout, planes, x_block, seq, |x_block| {
                            input_tiles(isa, p, x_block, v);
                            border_windows(p, x_block, windows);
                        });
                        // Point ξ's matrices are every tile's ξ-th row of C (or K) values.
                        let desc = GemmDesc {
                            a: MatrixLayout::row_major(POINTS * c),
                            c: MatrixLayout::row_major(POINTS * k),
                            ..GemmDesc::row_major(tiles, k, c)
                        };
                        let last = |width: usize| (tiles - 1) * POINTS * width + width;
                        for (point, u) in u.chunks_exact(c * k).enumerate() {
                            let v = &v[point * c..][..last(c)];
                            let m = &mut m[point * k..][..last(k)];
                            sgemm_on(isa, &desc, v, u, m, &Epilogue::default(), seq)
                                .expect("shapes derived from a validated plan");
                        }
                        if border > 0 {
                            let desc = GemmDesc::row_major(border, k, WINDOW * c);
                            let epilogue = match bias {
                                Some(bias) => Epilogue::default().bias(Bias::PerCol(bias)),
                                None => Epilogue::default(),
                            };
                            let epilogue = if relu {
                                epilogue.activation(Activation::Relu)
                            } else {
                                epilogue
                            };
                            sgemm_on(isa, &desc, windows, direct, border_y, &epilogue, seq)
                                .expect("shapes derived from a validated plan");
                        }
                        let planes = (Buffer::Relayout, k, p.output_pixels());
                        let Ok(()) = written_as_nhwc(p.layout, planes, y_block, seq, |y_block| {
                            output_tiles(isa, p, m, (bias, relu), y_block);
                            border_store(p, border_y, y_block);
                            Ok::<(), Infallible>(())
                        });
                    });
                });
                // ReLU went with the stores; other activations take a pass of their own.
                if !matches!(activation, Activation::Identity | Activation::Relu) {
                    activate_slice_on(isa, activation, y_block).expect("validated by the caller");
                }
            });
        },
    );
}

/// Each border pixel's 3×3 window of the images `x` (NHWC), a row of `windows` after
/// another: tap after tap, channels innermost, zero outside the image.
fn border_windows(p: &Problem, x: &[f32], windows: &mut [f32]) {
    let [height, width] = p.input;
    let [pad_top, pad_left] = p.padding;
    let c = p.channels;
    let pixels = x
        .chunks_exact(p.input_len())
        .flat_map(|image| p.border_pixels().map(move |pixel| (image, pixel)));
    for ((image, (h, w)), window) in pixels.zip(windows.chunks_exact_mut(WINDOW * c)) {
        for (tap, values) in window.chunks_exact_mut(c).enumerate() {
            let (r, s) = (tap / TAPS, tap % TAPS);
            match (
                inside(h + r, pad_top, height),
                inside(w + s, pad_left, width),
            ) {
                (Some(i), Some(j)) => values.copy_from_slice(&image[(i * width + j) * c..][..c]),
                _ => values.fill(0.0),
            }
        }
    }
}

/// The border pixels' outputs (`K` values each, in [`border_windows`]'s order) into the
/// images `y` (NHWC).
fn border_store(p: &Problem, outputs: &[f32], y: &mut [f32]) {
    let (width, k) = (p.output[1], p.out_channels);
    let mut rows = outputs.chunks_exact(k);
    for image in y.chunks_exact_mut(p.output_len()) {
        for ((h, w), row) in p.border_pixels().zip(rows.by_ref()) {
            image[(h * width + w) * k..][..k].copy_from_slice(row);
        }
    }
}

lanes_dispatch! {
    /// [`input_tiles_kernel`] on `isa`.
    fn input_tiles(p: &Problem, x: &[f32], v: &mut [f32]) => input_tiles_kernel
}

lanes_dispatch! {
    /// [`output_tiles_kernel`] on `isa`.
    fn output_tiles(
        p: &Problem,
        m: &[f32],
        epilogue: (Option<&[f32]>, bool),
        y: &mut [f32],
    ) => output_tiles_kernel
}

/// Every input tile of the images `x` in the transformed domain, tile after tile: point
/// ξ of tile t, channel c at `v[(t·36 + ξ)·C + c]`, so that the stores run in order.
#[inline(always)]
fn input_tiles_kernel<L: Lanes>(p: &Problem, x: &[f32], v: &mut [f32]) {
    let [down, across] = p.tiles();
    let [height, width] = p.input;
    let [pad_top, pad_left] = p.padding;
    let c = p.channels;
    for (n, image) in x.chunks_exact(p.input_len()).enumerate() {
        for ti in 0..down {
            for tj in 0..across {
                let t = (n * down + ti) * across + tj;
                for c0 in (0..c).step_by(L::LANES) {
                    let lanes = L::LANES.min(c - c0);
                    let zero = L::splat(0.0);
                    let transformed = rows_then_columns!(
                        |a| {
                            let mut row = [zero; ALPHA];
                            if let Some(h) = inside(ti * TILE + a, pad_top, height) {
                                for (b, value) in row.iter_mut().enumerate() {
                                    if let Some(w) = inside(tj * TILE + b, pad_left, width) {
                                        *value = load_n(image, (h * width + w) * c + c0, lanes);
                                    }
                                }
                            }
                            row
                        },
                        input,
                        ALPHA => ALPHA
                    );
                    for (point, &value) in transformed.iter().flatten().enumerate() {
                        store_n(value, v, (t * POINTS + point) * c + c0, lanes);
                    }
                }
            }
        }
    }
}

/// Every output tile of the images `y` from the GEMMs' products `m` (laid out as the
/// input tiles, with K channels), plus the bias, then a ReLU when `relu`; rows and
/// columns past the output's edge are dropped.
#[inline(always)]
fn output_tiles_kernel<L: Lanes>(
    p: &Problem,
    m: &[f32],
    (bias, relu): (Option<&[f32]>, bool),
    y: &mut [f32],
) {
    let [down, across] = p.tiles();
    let [height, width] = p.output;
    let k = p.out_channels;
    for (n, image) in y.chunks_exact_mut(p.output_len()).enumerate() {
        for ti in 0..down {
            for tj in 0..across {
                let t = (n * down + ti) * across + tj;
                for k0 in (0..k).step_by(L::LANES) {
                    let lanes = L::LANES.min(k - k0);
                    let b = bias.map(|b| load_n::<L>(b, k0, lanes));
                    let zero = L::splat(0.0);
                    let out = rows_then_columns!(
                        |a| {
                            let mut row = [zero; ALPHA];
                            for (b, value) in row.iter_mut().enumerate() {
                                let point = a * ALPHA + b;
                                *value = load_n(m, (t * POINTS + point) * k + k0, lanes);
                            }
                            row
                        },
                        output,
                        ALPHA => TILE
                    );
                    for (i, row) in out.iter().enumerate().take(height - ti * TILE) {
                        let y_row = (ti * TILE + i) * width;
                        for (j, &value) in row.iter().enumerate().take(width - tj * TILE) {
                            let value = match b {
                                Some(b) => value + b,
                                None => value,
                            };
                            let value = if relu { value.max(zero) } else { value };
                            store_n(value, image, (y_row + tj * TILE + j) * k + k0, lanes);
                        }
                    }
                }
            }
        }
    }
}

/// The image row (or column) of tile position `at`, if it is inside `0..size` once the
/// padding `pad` is taken off.
#[inline(always)]
fn inside(at: usize, pad: usize, size: usize) -> Option<usize> {
    at.checked_sub(pad).filter(|&i| i < size)
}
