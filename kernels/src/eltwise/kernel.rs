//! The loops of the element-wise kernels, generic over [`Lanes`].
//!
//! A work item is a run of segments, each with its bias (one value, or a pattern that
//! every segment repeats). Every element goes through the same vector code whatever its
//! position — partial vectors are zero-padded, not computed another way — so results
//! never depend on how a tensor is split among threads.

use super::act::{with_forward, with_gradient, Forward, Gradient};
use super::lanes::Lanes;
use super::{vmath, Activation, MathFunction};

/// The widest path (AVX2) has 8 lanes; buffers for lane shuffles have this size.
const MAX_LANES: usize = 8;

/// Where the bias of each segment of a work item comes from.
#[derive(Clone, Copy)]
pub(super) enum SegmentBias<'a> {
    None,
    /// Segment j adds `bias[(first + j) % bias.len()]` to all its elements.
    Cyclic {
        bias: &'a [f32],
        first: usize,
    },
    /// Element i of every segment adds `pattern[i]` (`pattern` is one segment long).
    Pattern(&'a [f32]),
}

/// How a work item is cut into segments.
#[derive(Clone, Copy)]
pub(super) struct ItemShape<'a> {
    /// Length of every segment but the last, which may be shorter; at least 1.
    pub segment: usize,
    pub bias: SegmentBias<'a>,
    /// Store the output with streaming stores (tensors larger than the caches).
    pub stream: bool,
}

/// The bias of one segment, ready for the loop.
#[derive(Clone, Copy)]
enum Bias<'a, L> {
    Splat(L),
    Pattern(&'a [f32]),
}

#[inline(always)]
fn segment_bias<L: Lanes>(bias: SegmentBias<'_>, j: usize) -> Bias<'_, L> {
    match bias {
        // x + (−0) is x for every x, −0 included.
        SegmentBias::None => Bias::Splat(L::splat(-0.0)),
        SegmentBias::Cyclic { bias, first } => {
            Bias::Splat(L::splat(bias[(first + j) % bias.len()]))
        }
        SegmentBias::Pattern(pattern) => Bias::Pattern(pattern),
    }
}

/// `n` values from `s[at..]`: a whole vector when `n == LANES`, else zero-padded.
#[inline(always)]
fn load<L: Lanes>(s: &[f32], at: usize, n: usize) -> L {
    if n == L::LANES {
        L::load(&s[at..at + n])
    } else {
        L::load_partial(&s[at..at + n])
    }
}

#[inline(always)]
fn store<L: Lanes>(v: L, d: &mut [f32], at: usize, n: usize, stream: bool) {
    let d = &mut d[at..at + n];
    if n < L::LANES {
        v.store_partial(d)
    } else if stream {
        v.store_stream(d)
    } else {
        v.store(d)
    }
}

/// Calls `f(at, n)` over `len` elements: a partial head of `head` elements (which
/// aligns the rest for streaming stores), whole vectors, a partial tail.
#[inline(always)]
fn sweep<L: Lanes>(len: usize, head: usize, mut f: impl FnMut(usize, usize)) {
    if head > 0 {
        f(0, head);
    }
    let mut at = head;
    while len - at >= L::LANES {
        f(at, L::LANES);
        at += L::LANES;
    }
    if at < len {
        f(at, len - at);
    }
}

/// The aligned head of an output about to be swept.
#[inline(always)]
fn head<L: Lanes>(out: &[f32], stream: bool) -> usize {
    if stream {
        L::stream_head(out).min(out.len())
    } else {
        0
    }
}

/// out[i] = op(input(out, i)) over one segment, vector by vector.
#[inline(always)]
fn map_segment<L: Lanes>(
    out: &mut [f32],
    stream: bool,
    input: impl Fn(&[f32], usize, usize) -> L,
    op: impl Fn(L) -> L,
) {
    let len = out.len();
    sweep::<L>(len, head::<L>(out, stream), |at, n| {
        let v = op(input(out, at, n));
        store(v, out, at, n, stream);
    });
}

/// y = f(x + bias) over one segment; `x` None means in place in `y`.
#[inline(always)]
fn forward_segment<L: Lanes, F: Forward<L>>(
    f: F,
    bias: Bias<'_, L>,
    x: Option<&[f32]>,
    y: &mut [f32],
    stream: bool,
) {
    let value = |z: L| f.value(z);
    match (x, bias) {
        (Some(x), Bias::Splat(b)) => {
            map_segment(y, stream, |_, at, n| load::<L>(x, at, n) + b, value)
        }
        (Some(x), Bias::Pattern(p)) => map_segment(
            y,
            stream,
            |_, at, n| load::<L>(x, at, n) + load::<L>(p, at, n),
            value,
        ),
        (None, Bias::Splat(b)) => map_segment(y, stream, |y, at, n| load::<L>(y, at, n) + b, value),
        (None, Bias::Pattern(p)) => map_segment(
            y,
            stream,
            |y, at, n| load::<L>(y, at, n) + load::<L>(p, at, n),
            value,
        ),
    }
}

/// y = act(x + bias) over one work item; `x` None means in place in `y`.
#[inline(always)]
pub(super) fn forward<L: Lanes>(
    act: Activation,
    item: &ItemShape<'_>,
    x: Option<&[f32]>,
    y: &mut [f32],
) {
    with_forward!(L, act, f => {
        for (j, y) in y.chunks_mut(item.segment).enumerate() {
            let x = x.map(|x| &x[j * item.segment..j * item.segment + y.len()]);
            forward_segment(f, segment_bias::<L>(item.bias, j), x, y, item.stream);
        }
    });
    if item.stream {
        L::stream_fence();
    }
}

/// Sums a segment's dz in a fixed order whatever the head: the element at offset i goes
/// to the running sum of residue i mod LANES, and the residues are added in order at the
/// end. Main-loop lane l holds residue (head + l) mod LANES, so the head's values are
/// rotated into the top lanes; then the sum does not depend on the output's alignment.
struct ResidueSum<L> {
    acc: L,
    head: usize,
}

impl<L: Lanes> ResidueSum<L> {
    #[inline(always)]
    fn new(head: usize) -> Self {
        ResidueSum {
            acc: L::splat(0.0),
            head,
        }
    }

    /// Adds the `n` values just stored at `dz[at..]` (whose vector is `v`).
    #[inline(always)]
    fn add(&mut self, v: L, dz: &[f32], at: usize, n: usize) {
        let lanes = L::LANES;
        let v = if n == lanes {
            v
        } else if at == 0 && self.head > 0 {
            let mut buf = [0.0f32; MAX_LANES];
            buf[lanes - n..lanes].copy_from_slice(&dz[..n]);
            L::load(&buf[..lanes])
        } else {
            // Re-read, so that the padding lanes are 0 whatever the gradient gave them.
            L::load_partial(&dz[at..at + n])
        };
        self.acc = self.acc + v;
    }

    #[inline(always)]
    fn total(self) -> f32 {
        let lanes = L::LANES;
        let mut buf = [0.0f32; MAX_LANES];
        self.acc.store(&mut buf[..lanes]);
        (0..lanes).fold(0.0, |sum, r| sum + buf[(r + lanes - self.head) % lanes])
    }
}

/// dz = dy·f′(saved + b) over one segment with one bias value; returns Σ dz. `dy` None
/// means dy is read from `dz`.
#[inline(always)]
fn backward_segment_sum<L: Lanes, G: Gradient<L>>(
    g: G,
    b: L,
    saved: &[f32],
    dy: Option<&[f32]>,
    dz: &mut [f32],
    stream: bool,
) -> f32 {
    let len = dz.len();
    let head = head::<L>(dz, stream);
    let mut sum = ResidueSum::<L>::new(head);
    match dy {
        Some(dy) => sweep::<L>(len, head, |at, n| {
            let r = g.grad(load::<L>(saved, at, n) + b, load::<L>(dy, at, n));
            store(r, dz, at, n, stream);
            sum.add(r, dz, at, n);
        }),
        None => sweep::<L>(len, head, |at, n| {
            let r = g.grad(load::<L>(saved, at, n) + b, load::<L>(dz, at, n));
            store(r, dz, at, n, stream);
            sum.add(r, dz, at, n);
        }),
    }
    sum.total()
}

/// dz = dy·f′(saved + pattern) over one segment, adding dz into `sums` position by
/// position.
#[inline(always)]
fn backward_segment_pattern<L: Lanes, G: Gradient<L>>(
    g: G,
    pattern: &[f32],
    saved: &[f32],
    dy: Option<&[f32]>,
    dz: &mut [f32],
    sums: &mut [f32],
    stream: bool,
) {
    let len = dz.len();
    let head = head::<L>(dz, stream);
    let mut accumulate = |r: L, at: usize, n: usize| {
        let s = load::<L>(sums, at, n) + r;
        store(s, sums, at, n, false);
    };
    match dy {
        Some(dy) => sweep::<L>(len, head, |at, n| {
            let z = load::<L>(saved, at, n) + load::<L>(pattern, at, n);
            let r = g.grad(z, load::<L>(dy, at, n));
            store(r, dz, at, n, stream);
            accumulate(r, at, n);
        }),
        None => sweep::<L>(len, head, |at, n| {
            let z = load::<L>(saved, at, n) + load::<L>(pattern, at, n);
            let r = g.grad(z, load::<L>(dz, at, n));
            store(r, dz, at, n, stream);
            accumulate(r, at, n);
        }),
    }
}

/// The backward of one work item: dz = dy·f′ from `saved` (z = saved + bias, or y when
/// `from_y`). `dy` None means dy is read from `dz`.
///
/// The item's partial bias-gradient sums go to `sums`: with one bias value per segment,
/// `sums[j]` = Σ dz over segment j (nothing when `sums` is empty); with a bias pattern,
/// `sums[i]` += dz at element i of every segment (`sums` is one pattern long).
#[inline(always)]
pub(super) fn backward<L: Lanes>(
    act: Activation,
    from_y: bool,
    item: &ItemShape<'_>,
    saved: &[f32],
    dy: Option<&[f32]>,
    dz: &mut [f32],
    sums: &mut [f32],
) {
    with_gradient!(L, act, from_y, g => {
        for (j, dz) in dz.chunks_mut(item.segment).enumerate() {
            let range = j * item.segment..j * item.segment + dz.len();
            let saved = &saved[range.clone()];
            let dy = dy.map(|dy| &dy[range]);
            match segment_bias::<L>(item.bias, j) {
                Bias::Pattern(p) => {
                    let n = dz.len();
                    backward_segment_pattern::<L, _>(g, &p[..n], saved, dy, dz, &mut sums[..n], item.stream);
                }
                Bias::Splat(b) => {
                    let sum = backward_segment_sum(g, b, saved, dy, dz, item.stream);
                    if let Some(slot) = sums.get_mut(j) {
                        *slot = sum;
                    }
                }
            }
        }
    });
    if item.stream {
        L::stream_fence();
    }
}

/// y = f(x) for one of the vector-math functions.
#[inline(always)]
pub(super) fn math<L: Lanes>(function: MathFunction, x: &[f32], y: &mut [f32]) {
    let input = |_: &[f32], at, n| load::<L>(x, at, n);
    match function {
        MathFunction::Exp => map_segment(y, false, input, vmath::exp),
        MathFunction::Tanh => map_segment(y, false, input, vmath::tanh),
        MathFunction::Sigmoid => map_segment(y, false, input, vmath::sigmoid),
        MathFunction::Erf => map_segment(y, false, input, vmath::erf),
    }
}
