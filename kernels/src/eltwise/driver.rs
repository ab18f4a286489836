//! From a bias + activation call to work items: the split, the threads, and the final
//! reduction of the bias gradient.
//!
//! The split depends on the shape alone, never on the thread count, and every partial
//! sum of the bias gradient belongs to one item and is added in item order at the end:
//! so the results are bitwise the same for every [`Parallelism`].

use super::kernel::{ItemShape, SegmentBias, PATTERN_OVERHANG};
use super::{Activation, BiasShape, MathFunction};
use crate::arch::{CacheSizes, Isa};
use crate::parallel::{for_each_item, Parallelism};
use crate::workspace::{with_f32s, with_f64s};

/// `kernel::backward` of one path: (activation, from y, item, saved, dy, dz, sums).
type BackwardFn =
    fn(Activation, bool, &ItemShape<'_>, &[f32], Option<&[f32]>, &mut [f32], &mut [f32]);

/// The entry points of one ISA path (see `kernel.rs` for what each does).
pub(super) struct Paths {
    pub forward: fn(Activation, &ItemShape<'_>, Option<&[f32]>, &mut [f32]),
    pub backward: BackwardFn,
    pub math: fn(MathFunction, &[f32], &mut [f32]),
}

/// The entry points of `isa`, which the caller has checked this CPU runs.
pub(super) fn paths(isa: Isa) -> &'static Paths {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => &super::avx2::PATHS,
        Isa::Neon => &super::neon::PATHS,
        // Scalar, and AVX2 off x86_64, which `check_available` refuses before this.
        _ => &super::lanes::SCALAR_PATHS,
    }
}

/// Elements per work item: 64 KiB per array, small enough to balance the threads and
/// large enough that the per-item cost (a lock, a partial sum) does not show.
const ITEM_ELEMENTS: usize = 16 * 1024;
/// Channel runs at least this long get their bias as one broadcast value; shorter ones
/// are processed row by row against an expanded bias pattern, so that vectors stay full.
const MIN_RUN: usize = 16;
/// Rows shorter than this are repeated in the pattern until it is a multiple of 8
/// elements long, so that no vector straddles two patterns.
const SHORT_ROW: usize = 256;
/// In the row regime an item spans at least this many patterns when it keeps a
/// position-wise partial sum, which bounds the partial sums to 1/16 of the tensor.
const PATTERNS_PER_PARTIAL: usize = 16;

/// How a tensor is cut into work items.
#[derive(Clone, Copy)]
enum Plan {
    /// `runs` runs of `run` elements (one bias each), each cut into `pieces` pieces of
    /// `piece` elements (the last one of a run shorter); an item is `per_item`
    /// consecutive pieces (whole runs when `pieces` is 1). One partial sum per piece.
    Runs {
        runs: usize,
        run: usize,
        pieces: usize,
        piece: usize,
        per_item: usize,
    },
    /// Whole rows, grouped into patterns of `pattern` elements (a whole number of rows);
    /// an item is `per_item` consecutive patterns, with one partial sum per position of
    /// the pattern.
    Rows { pattern: usize, per_item: usize },
}

/// One work item: `len` elements from `start`, its segments, and the range of the
/// partial sums it owns.
struct ItemSpec {
    start: usize,
    len: usize,
    segment: usize,
    /// The first run, for the bias of the runs regime.
    first_run: usize,
    sums: usize,
}

impl Plan {
    /// `flat`: no bias and no bias gradient, so the tensor is one long run.
    fn new(shape: &BiasShape, flat: bool, position_sums: bool) -> Plan {
        let (runs, run) = if flat {
            (1, shape.len())
        } else {
            (shape.outer * shape.channels, shape.inner)
        };
        if flat || run >= MIN_RUN {
            let pieces = run.div_ceil(ITEM_ELEMENTS).max(1);
            let piece = run.div_ceil(pieces);
            let per_item = if pieces == 1 {
                (ITEM_ELEMENTS / run.max(1)).max(1)
            } else {
                1
            };
            Plan::Runs {
                runs,
                run,
                pieces,
                piece,
                per_item,
            }
        } else {
            let row = shape.channels * shape.inner;
            let rows = if row < SHORT_ROW { 8 / gcd(row, 8) } else { 1 };
            let pattern = rows * row;
            let mut per_item = (ITEM_ELEMENTS / pattern).max(1);
            if position_sums {
                per_item = per_item.max(PATTERNS_PER_PARTIAL);
            }
            Plan::Rows { pattern, per_item }
        }
    }

    /// The work items of a tensor of `len` elements, in order.
    fn items(self, len: usize) -> impl Iterator<Item = ItemSpec> {
        let (runs_items, rows_items) = match self {
            Plan::Runs {
                runs,
                run,
                pieces,
                piece,
                per_item,
            } => {
                let total = runs * pieces;
                let piece_start = move |p: usize| (p / pieces) * run + (p % pieces) * piece;
                let piece_end = move |p: usize| {
                    let q = p % pieces;
                    (p / pieces) * run + ((q + 1) * piece).min(run)
                };
                let items = (0..total.div_ceil(per_item)).map(move |k| {
                    let first = k * per_item;
                    let count = per_item.min(total - first);
                    let start = piece_start(first);
                    let len = piece_end(first + count - 1) - start;
                    ItemSpec {
                        start,
                        len,
                        segment: if pieces == 1 { run } else { len },
                        first_run: first / pieces,
                        sums: count,
                    }
                });
                (Some(items), None)
            }
            Plan::Rows { pattern, per_item } => {
                let span = pattern * per_item;
                let items = (0..len.div_ceil(span)).map(move |k| ItemSpec {
                    start: k * span,
                    len: span.min(len - k * span),
                    segment: pattern,
                    first_run: 0,
                    sums: pattern + PATTERN_OVERHANG,
                });
                (None, Some(items))
            }
        };
        runs_items
            .into_iter()
            .flatten()
            .chain(rows_items.into_iter().flatten())
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Whether outputs of `len` floats are written with streaming stores: when they do not
/// fit in the last-level cache, where a normal store would first read the line.
fn streams(len: usize) -> bool {
    len.saturating_mul(4) >= CacheSizes::detect().l3_or_default()
}

/// Writes the bias of each element of a pattern of `out.len() − PATTERN_OVERHANG`
/// elements (−0, which adds nothing, when there is no bias), followed by the overhang
/// that repeats its start.
fn expand_bias(shape: &BiasShape, bias: Option<&[f32]>, out: &mut [f32]) {
    let len = out.len() - PATTERN_OVERHANG;
    for (p, o) in out.iter_mut().enumerate() {
        *o = bias.map_or(-0.0, |b| b[(p % len / shape.inner) % shape.channels]);
    }
}

/// The length of the bias pattern of `plan` (0 in the runs regime, which needs none).
fn pattern_len(plan: Plan) -> usize {
    match plan {
        Plan::Rows { pattern, .. } => pattern + PATTERN_OVERHANG,
        Plan::Runs { .. } => 0,
    }
}

/// The segment bias of an item.
fn item_bias<'a>(
    plan: Plan,
    bias: Option<&'a [f32]>,
    pattern: &'a [f32],
    spec: &ItemSpec,
) -> SegmentBias<'a> {
    match (plan, bias) {
        (Plan::Rows { .. }, _) => SegmentBias::Pattern(pattern),
        (Plan::Runs { .. }, Some(bias)) => SegmentBias::Cyclic {
            bias,
            first: spec.first_run,
        },
        (Plan::Runs { .. }, None) => SegmentBias::None,
    }
}

/// An item's share of the outputs, handed to whichever thread runs it.
struct Task<'a> {
    shape: ItemShape<'a>,
    start: usize,
    out: &'a mut [f32],
    sums: &'a mut [f32],
}

/// Cuts `out` and `sums` along `specs` and runs `work` on every item, spread over `par`
/// (on one thread, item after item without any task list).
fn run<'a>(
    par: Parallelism,
    specs: impl Iterator<Item = ItemSpec>,
    shape_of: impl Fn(&ItemSpec) -> ItemShape<'a>,
    out: &'a mut [f32],
    sums: &'a mut [f32],
    work: impl Fn(&mut Task<'a>) + Sync,
) {
    let (mut out_rest, mut sums_rest) = (out, sums);
    let tasks = specs.map(|spec| {
        let (out, rest) = std::mem::take(&mut out_rest).split_at_mut(spec.len);
        out_rest = rest;
        let take = spec.sums.min(sums_rest.len());
        let (sums, rest) = std::mem::take(&mut sums_rest).split_at_mut(take);
        sums_rest = rest;
        Task {
            shape: shape_of(&spec),
            start: spec.start,
            out,
            sums,
        }
    });
    for_each_item(par, tasks, |_, mut task| work(&mut task));
}

/// y = act(x + bias) (`x` None: in place in `y`). Lengths are checked by the caller.
pub(super) fn forward(
    isa: Isa,
    shape: &BiasShape,
    act: Activation,
    x: Option<&[f32]>,
    bias: Option<&[f32]>,
    y: &mut [f32],
    par: Parallelism,
) {
    let len = y.len();
    if len == 0 {
        return;
    }
    let paths = paths(isa);
    let plan = Plan::new(shape, bias.is_none(), false);
    with_f32s(pattern_len(plan), 0.0, |pattern| {
        if !pattern.is_empty() {
            expand_bias(shape, bias, pattern);
        }
        let pattern = &*pattern;
        let stream = streams(len);
        let shape_of = |spec: &ItemSpec| ItemShape {
            segment: spec.segment,
            bias: item_bias(plan, bias, pattern, spec),
            stream,
        };
        run(par, plan.items(len), shape_of, y, &mut [], |task| {
            let x = x.map(|x| &x[task.start..task.start + task.out.len()]);
            (paths.forward)(act, &task.shape, x, task.out);
        });
    });
}

/// What the backward reads besides dy: `saved` is x (z = x + bias) or, when `from_y`,
/// the forward's output (and `bias` is then None).
pub(super) struct BackwardInput<'a> {
    pub saved: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub from_y: bool,
}

/// dz = dy·act′ (`dy` None: read from `dz`), and db when asked. Lengths are checked by
/// the caller.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    isa: Isa,
    shape: &BiasShape,
    act: Activation,
    input: BackwardInput<'_>,
    dy: Option<&[f32]>,
    dz: &mut [f32],
    db: Option<&mut [f32]>,
    par: Parallelism,
) {
    let len = dz.len();
    if len == 0 {
        if let Some(db) = db {
            db.fill(0.0);
        }
        return;
    }
    let paths = paths(isa);
    let flat = input.bias.is_none() && db.is_none();
    let plan = Plan::new(shape, flat, true);
    let sums_len = match plan {
        Plan::Rows { pattern, per_item } => {
            len.div_ceil(pattern * per_item) * (pattern + PATTERN_OVERHANG)
        }
        Plan::Runs { runs, pieces, .. } => {
            if db.is_some() {
                runs * pieces
            } else {
                0
            }
        }
    };
    with_f32s(pattern_len(plan), 0.0, |pattern| {
        if !pattern.is_empty() {
            expand_bias(shape, input.bias, pattern);
        }
        let pattern = &*pattern;
        with_f32s(sums_len, 0.0, |sums| {
            let stream = streams(len);
            let shape_of = |spec: &ItemSpec| ItemShape {
                segment: spec.segment,
                bias: item_bias(plan, input.bias, pattern, spec),
                stream,
            };
            run(par, plan.items(len), shape_of, dz, sums, |task| {
                let range = task.start..task.start + task.out.len();
                let dy = dy.map(|dy| &dy[range.clone()]);
                (paths.backward)(
                    act,
                    input.from_y,
                    &task.shape,
                    &input.saved[range],
                    dy,
                    task.out,
                    task.sums,
                );
            });
            if let Some(db) = db {
                reduce_bias_gradient(shape, plan, sums, db);
            }
        });
    });
}

/// db[c] = the partial sums of channel c, added in f64 in item order.
fn reduce_bias_gradient(shape: &BiasShape, plan: Plan, sums: &[f32], db: &mut [f32]) {
    with_f64s(shape.channels, 0.0, |total| {
        reduce_into(shape, plan, sums, db, total)
    });
}

fn reduce_into(shape: &BiasShape, plan: Plan, sums: &[f32], db: &mut [f32], total: &mut [f64]) {
    match plan {
        Plan::Runs { pieces, .. } => {
            for (p, &s) in sums.iter().enumerate() {
                total[(p / pieces) % shape.channels] += f64::from(s);
            }
        }
        Plan::Rows { pattern, .. } => {
            for item in sums.chunks_exact(pattern + PATTERN_OVERHANG) {
                for (p, &s) in item[..pattern].iter().enumerate() {
                    total[(p / shape.inner) % shape.channels] += f64::from(s);
                }
            }
        }
    }
    for (d, &mut t) in db.iter_mut().zip(total) {
        *d = t as f32;
    }
}

/// y = f(x), one thread.
pub(super) fn math(isa: Isa, function: MathFunction, x: &[f32], y: &mut [f32]) {
    (paths(isa).math)(function, x, y)
}

/// values = act(values), one thread, no bias.
pub(super) fn activate_slice(isa: Isa, act: Activation, values: &mut [f32]) {
    if values.is_empty() {
        return;
    }
    let item = ItemShape {
        segment: values.len(),
        bias: SegmentBias::None,
        stream: false,
    };
    (paths(isa).forward)(act, &item, None, values)
}
