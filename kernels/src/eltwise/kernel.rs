//! The loops of the element-wise kernels, generic over [`Lanes`].
//!
//! A work item is a stretch of the tensor made of segments: channel runs with one bias
//! value each, or repetitions of a bias pattern. The item is swept as one stream of
//! vectors whatever its segments — a vector may straddle two — so that streaming stores
//! cover whole cache lines and short segments cost no partial vectors of their own.
//! Every element goes through the same vector code wherever it lies (partial vectors
//! are zero-padded, not computed another way), so results never depend on the split.

use super::act::{with_forward, with_gradient, Forward, Gradient};
use super::lanes::Lanes;
use super::{vmath, Activation, MathFunction};

/// The widest path (AVX2) has 8 lanes; buffers for lane shuffles have this size.
const MAX_LANES: usize = 8;

/// Extra elements at the end of a bias pattern (its start, repeated), and of the
/// position-wise sums, so that a vector that straddles the pattern's end stays inside.
pub(super) const PATTERN_OVERHANG: usize = MAX_LANES;

/// Floats in a 64-byte cache line.
const LINE: usize = 16;

/// Where the bias of each segment of a work item comes from.
#[derive(Clone, Copy)]
pub(super) enum SegmentBias<'a> {
    None,
    /// Segment j adds `bias[(first + j) % bias.len()]` to all its elements.
    Cyclic {
        bias: &'a [f32],
        first: usize,
    },
    /// Element i of every segment adds `pattern[i]`; `pattern` is one segment long plus
    /// [`PATTERN_OVERHANG`] elements that repeat its start.
    Pattern(&'a [f32]),
}

/// How a work item is cut into segments.
#[derive(Clone, Copy)]
pub(super) struct ItemShape<'a> {
    /// Length of every segment but the last, which may be shorter; at least
    /// `MAX_LANES` when the item has more than one segment, so that a vector straddles
    /// at most one boundary.
    pub segment: usize,
    pub bias: SegmentBias<'a>,
    /// Store the output with streaming stores (tensors larger than the caches).
    pub stream: bool,
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

/// Walks the `$len` elements of an output in order, in three phases split by `$region`
/// = (head, end, streaming) from [`stream_region`]: `[0, head)` and `[end, len)` with
/// ordinary stores, `[head, end)` in whole vectors stored with streaming stores when
/// `streaming`.
///
/// Up to the next boundary (`$boundary`, evaluated with the current offset bound to
/// `$cur`: where the current segment ends), whole vectors go to `$stretch` with the
/// range (`$a`, `$b`) and whether to stream (`$snt`): a tight loop with no per-vector
/// bookkeeping, which may end exactly at the boundary. A vector that straddles a
/// boundary, and the head's and the tail's, go one by one to `$edge` with (`$at`, `$n`,
/// `$nt`), `$n` < LANES marking a partial vector; the edge keeps the bookkeeping.
///
/// Macros, not functions taking closures: a closure is a function of its own, compiled
/// without the caller's `target_feature`s, and a large one is not inlined — which would
/// leave every intrinsic in it an out-of-line call.
macro_rules! walk {
    (
        $L:ty, $len:expr, $region:expr, |$cur:ident| $boundary:expr,
        stretch |$a:ident, $b:ident, $snt:ident| $stretch:block,
        edge |$at:ident, $n:ident, $nt:ident| $edge:block
    ) => {{
        let lanes = <$L as Lanes>::LANES;
        let len: usize = $len;
        let (head, end, streaming): (usize, usize, bool) = $region;
        let mut next = 0usize;
        while next < head {
            let ($at, $n, $nt) = (next, lanes.min(head - next), false);
            $edge
            next += $n;
        }
        while next < len {
            let in_region = streaming && next < end;
            let stop = if in_region { end } else { len };
            let boundary: usize = {
                let $cur = next;
                $boundary
            };
            let whole = (boundary.min(stop) - next) / lanes;
            if whole > 0 {
                let ($a, $b, $snt) = (next, next + whole * lanes, in_region);
                $stretch
                next += whole * lanes;
            } else {
                let $n = lanes.min(len - next);
                let ($at, $nt) = (next, in_region);
                $edge
                next += $n;
            }
        }
    }};
}

/// Whole vectors of `s[a..b]`.
#[inline(always)]
fn vectors<L: Lanes>(s: &[f32], a: usize, b: usize) -> std::slice::ChunksExact<'_, f32> {
    s[a..b].chunks_exact(L::LANES)
}

#[inline(always)]
fn vectors_mut<L: Lanes>(s: &mut [f32], a: usize, b: usize) -> std::slice::ChunksExactMut<'_, f32> {
    s[a..b].chunks_exact_mut(L::LANES)
}

#[inline(always)]
fn put<L: Lanes>(v: L, d: &mut [f32], stream: bool) {
    if stream {
        v.store_stream(d)
    } else {
        v.store(d)
    }
}

/// The phases of a sweep over `out`: (head, end, streaming). Streaming covers whole
/// cache lines only, so that no line is written partly by streaming and partly by
/// ordinary stores (which would read it back from memory); without streaming, the
/// whole vectors simply run from the start.
#[inline(always)]
fn stream_region<L: Lanes>(out: &[f32], stream: bool) -> (usize, usize, bool) {
    let len = out.len();
    if stream && L::STREAMS {
        let head = ((out.as_ptr() as usize).wrapping_neg() % (4 * LINE) / 4).min(len);
        (head, head + (len - head) / LINE * LINE, true)
    } else {
        (0, len - len % L::LANES, false)
    }
}

/// The bias along an item of channel runs: segment j has one value, and a vector that
/// straddles two segments takes each lane's from its own.
struct RunBias<'a, L> {
    bias: &'a [f32],
    /// The channel of the following segment.
    channel: usize,
    segment: usize,
    /// The item offset where the current segment ends.
    end: usize,
    current: L,
    following: L,
}

impl<'a, L: Lanes> RunBias<'a, L> {
    /// `bias` empty: no bias (−0, which adds nothing, even to −0); otherwise the first
    /// segment has `bias[first % bias.len()]`.
    #[inline(always)]
    fn new(bias: &'a [f32], first: usize, segment: usize) -> Self {
        let channel = if bias.is_empty() {
            0
        } else {
            first % bias.len()
        };
        let mut runs = RunBias {
            bias,
            channel,
            segment,
            end: segment,
            current: L::splat(0.0),
            following: L::splat(0.0),
        };
        runs.current = runs.take();
        runs.following = runs.take();
        runs
    }

    /// The bias of the channel after the last one taken.
    #[inline(always)]
    fn take(&mut self) -> L {
        match self.bias.get(self.channel) {
            None => L::splat(-0.0),
            Some(&value) => {
                self.channel += 1;
                if self.channel == self.bias.len() {
                    self.channel = 0;
                }
                L::splat(value)
            }
        }
    }

    /// The bias of elements `at..at + n`.
    #[inline(always)]
    fn at(&self, at: usize, n: usize) -> L {
        if at + n <= self.end {
            self.current
        } else {
            L::select(L::lanes_below(self.end - at), self.current, self.following)
        }
    }

    /// Moves on past elements up to `to`.
    #[inline(always)]
    fn step(&mut self, to: usize) {
        if to >= self.end {
            self.end += self.segment;
            self.current = self.following;
            self.following = self.take();
        }
    }
}

/// Where the sweep stands in a repeated pattern of `period` elements.
struct PatternPosition {
    period: usize,
    next: usize,
}

impl PatternPosition {
    #[inline(always)]
    fn new(period: usize) -> Self {
        PatternPosition { period, next: 0 }
    }

    /// The pattern position of the next `n` elements (which may run past the period,
    /// into the overhang), then moves on past them.
    #[inline(always)]
    fn take(&mut self, n: usize) -> usize {
        let q = self.next;
        self.next += n;
        if self.next >= self.period {
            self.next -= self.period;
        }
        q
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
    with_forward!(L, act, f => forward_item::<L, _>(f, item, x, y));
    if item.stream && L::STREAMS {
        L::stream_fence();
    }
}

#[inline(always)]
fn forward_item<L: Lanes, F: Forward<L>>(
    f: F,
    item: &ItemShape<'_>,
    x: Option<&[f32]>,
    y: &mut [f32],
) {
    let region = stream_region::<L>(y, item.stream);
    let len = y.len();
    let (bias, first) = match item.bias {
        SegmentBias::Pattern(pattern) => {
            let period = item.segment;
            let mut position = PatternPosition::new(period);
            match x {
                Some(x) => walk!(
                    L,
                    len,
                    region,
                    |at| at + period - position.next,
                    stretch | a,
                    b,
                    nt | {
                        let p = vectors::<L>(pattern, position.next, position.next + b - a);
                        for ((x, y), p) in
                            vectors::<L>(x, a, b).zip(vectors_mut::<L>(y, a, b)).zip(p)
                        {
                            put(f.value(L::load(x) + L::load(p)), y, nt);
                        }
                        position.take(b - a);
                    },
                    edge | at,
                    n,
                    nt | {
                        let b = load::<L>(pattern, position.take(n), n);
                        store(f.value(load::<L>(x, at, n) + b), y, at, n, nt);
                    }
                ),
                None => walk!(
                    L,
                    len,
                    region,
                    |at| at + period - position.next,
                    stretch | a,
                    b,
                    nt | {
                        let p = vectors::<L>(pattern, position.next, position.next + b - a);
                        for (y, p) in vectors_mut::<L>(y, a, b).zip(p) {
                            put(f.value(L::load(y) + L::load(p)), y, nt);
                        }
                        position.take(b - a);
                    },
                    edge | at,
                    n,
                    nt | {
                        let b = load::<L>(pattern, position.take(n), n);
                        store(f.value(load::<L>(y, at, n) + b), y, at, n, nt);
                    }
                ),
            }
            return;
        }
        SegmentBias::Cyclic { bias, first } => (bias, first),
        SegmentBias::None => (&[][..], 0),
    };
    let mut runs = RunBias::<L>::new(bias, first, item.segment);
    match x {
        Some(x) => walk!(
            L,
            len,
            region,
            |_at| runs.end,
            stretch | a,
            b,
            nt | {
                let bias = runs.current;
                for (x, y) in vectors::<L>(x, a, b).zip(vectors_mut::<L>(y, a, b)) {
                    put(f.value(L::load(x) + bias), y, nt);
                }
                runs.step(b);
            },
            edge | at,
            n,
            nt | {
                let z = load::<L>(x, at, n) + runs.at(at, n);
                store(f.value(z), y, at, n, nt);
                runs.step(at + n);
            }
        ),
        None => walk!(
            L,
            len,
            region,
            |_at| runs.end,
            stretch | a,
            b,
            nt | {
                let bias = runs.current;
                for y in vectors_mut::<L>(y, a, b) {
                    put(f.value(L::load(y) + bias), y, nt);
                }
                runs.step(b);
            },
            edge | at,
            n,
            nt | {
                let z = load::<L>(y, at, n) + runs.at(at, n);
                store(f.value(z), y, at, n, nt);
                runs.step(at + n);
            }
        ),
    }
}

/// The sums of dz over the channel runs of an item, each in a fixed order whatever the
/// output's alignment: the element at offset i of a run goes to the running sum of
/// residue i mod LANES, and the residues are added in order when the run ends.
///
/// Lane l of the sweep's whole vectors holds item offsets ≡ head + l (mod LANES), so
/// every value is kept in lane (offset − head) mod LANES; a run's residue r then sits in
/// lane (r + run start − head) mod LANES.
struct RunSums<'s, L> {
    acc: L,
    head: usize,
    segment: usize,
    j: usize,
    end: usize,
    /// `sums[j]` receives run j's total (nothing when empty).
    sums: &'s mut [f32],
}

impl<'s, L: Lanes> RunSums<'s, L> {
    #[inline(always)]
    fn new(head: usize, segment: usize, sums: &'s mut [f32]) -> Self {
        RunSums {
            acc: L::splat(0.0),
            head,
            segment,
            j: 0,
            end: segment,
            sums,
        }
    }

    /// The lane of item offset `at`.
    #[inline(always)]
    fn lane(&self, at: usize) -> usize {
        (at + L::LANES * LINE - self.head) % L::LANES
    }

    /// The `n` values stored at `dz[at..]`, each in its lane, the other lanes 0.
    #[inline(always)]
    fn placed(&self, dz: &[f32], at: usize, n: usize) -> L {
        let lanes = L::LANES;
        let first = self.lane(at);
        let mut buf = [0.0f32; MAX_LANES];
        for (i, &value) in dz[at..at + n].iter().enumerate() {
            buf[(first + i) % lanes] = value;
        }
        L::load(&buf[..lanes])
    }

    /// Adds the `n` values just stored at `dz[at..]`, whose vector is `r`.
    #[inline(always)]
    fn add(&mut self, r: L, dz: &[f32], at: usize, n: usize) {
        let whole = n == L::LANES && self.lane(at) == 0;
        if at + n <= self.end {
            let v = if whole { r } else { self.placed(dz, at, n) };
            self.acc = self.acc + v;
            if at + n == self.end {
                self.close();
            }
        } else {
            let k = self.end - at;
            let (mine, theirs) = if whole {
                let below = L::lanes_below(k);
                let zero = L::splat(0.0);
                (L::select(below, r, zero), L::select(below, zero, r))
            } else {
                (self.placed(dz, at, k), self.placed(dz, at + k, n - k))
            };
            self.acc = self.acc + mine;
            self.close();
            self.acc = self.acc + theirs;
        }
    }

    /// Ends the current run if `to` is its end.
    #[inline(always)]
    fn reached(&mut self, to: usize) {
        if to == self.end {
            self.close();
        }
    }

    /// Ends run j: its residues, added pairwise in a fixed tree, go to `sums[j]`.
    #[inline(always)]
    fn close(&mut self) {
        let lanes = L::LANES;
        let mut lane_values = [0.0f32; MAX_LANES];
        self.acc.store(&mut lane_values[..lanes]);
        let start = self.end - self.segment;
        let first = (start + lanes * LINE - self.head) % lanes;
        let mut residues = [0.0f32; MAX_LANES];
        for (r, residue) in residues[..lanes].iter_mut().enumerate() {
            *residue = lane_values[(first + r) % lanes];
        }
        let mut width = lanes;
        while width > 1 {
            width /= 2;
            for i in 0..width {
                residues[i] = residues[2 * i] + residues[2 * i + 1];
            }
        }
        if let Some(slot) = self.sums.get_mut(self.j) {
            *slot = residues[0];
        }
        self.acc = L::splat(0.0);
        self.j += 1;
        self.end += self.segment;
    }
}

/// Adds `r`, the gradient at pattern positions `q..q + n`, into the position-wise sums;
/// what lands in the overhang is folded back to the pattern's start at once, so that
/// every position's sum takes its values one by one, in order.
#[inline(always)]
fn accumulate<L: Lanes>(sums: &mut [f32], period: usize, r: L, q: usize, n: usize) {
    let s = load::<L>(sums, q, n) + r;
    store(s, sums, q, n, false);
    if q + n > period {
        let m = q + n - period;
        let folded = load::<L>(sums, 0, m) + load::<L>(sums, period, m);
        store(folded, sums, 0, m, false);
        store(L::splat(0.0), sums, period, m, false);
    }
}

/// The backward of one work item: dz = dy·f′ from `saved` (z = saved + bias, or y when
/// `from_y`). `dy` None means dy is read from `dz`.
///
/// The item's partial bias-gradient sums go to `sums`: with one bias value per segment,
/// `sums[j]` = Σ dz over segment j (nothing when `sums` is empty); with a bias pattern,
/// `sums[i]` += dz at element i of every segment (`sums` is one pattern long plus
/// [`PATTERN_OVERHANG`], all zero on entry).
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
    with_gradient!(L, act, from_y, g => backward_item::<L, _>(g, item, saved, dy, dz, sums));
    if item.stream && L::STREAMS {
        L::stream_fence();
    }
}

#[inline(always)]
fn backward_item<L: Lanes, G: Gradient<L>>(
    g: G,
    item: &ItemShape<'_>,
    saved: &[f32],
    dy: Option<&[f32]>,
    dz: &mut [f32],
    sums: &mut [f32],
) {
    let region = stream_region::<L>(dz, item.stream);
    let len = dz.len();
    let (bias, first) = match item.bias {
        SegmentBias::Pattern(pattern) => {
            let period = item.segment;
            let mut position = PatternPosition::new(period);
            match dy {
                Some(dy) => walk!(
                    L,
                    len,
                    region,
                    |at| at + period - position.next,
                    stretch | a,
                    b,
                    nt | {
                        let (q, r) = (position.next, position.next + b - a);
                        let p = vectors::<L>(pattern, q, r).zip(vectors_mut::<L>(sums, q, r));
                        let io = vectors::<L>(saved, a, b).zip(vectors::<L>(dy, a, b));
                        for ((io, dz), (p, sum)) in io.zip(vectors_mut::<L>(dz, a, b)).zip(p) {
                            let d = g.grad(L::load(io.0) + L::load(p), L::load(io.1));
                            put(d, dz, nt);
                            (L::load(sum) + d).store(sum);
                        }
                        position.take(b - a);
                    },
                    edge | at,
                    n,
                    nt | {
                        let q = position.take(n);
                        let z = load::<L>(saved, at, n) + load::<L>(pattern, q, n);
                        let d = g.grad(z, load::<L>(dy, at, n));
                        store(d, dz, at, n, nt);
                        accumulate(sums, period, d, q, n);
                    }
                ),
                None => walk!(
                    L,
                    len,
                    region,
                    |at| at + period - position.next,
                    stretch | a,
                    b,
                    nt | {
                        let (q, r) = (position.next, position.next + b - a);
                        let p = vectors::<L>(pattern, q, r).zip(vectors_mut::<L>(sums, q, r));
                        let io = vectors::<L>(saved, a, b).zip(vectors_mut::<L>(dz, a, b));
                        for ((s, dz), (p, sum)) in io.zip(p) {
                            let d = g.grad(L::load(s) + L::load(p), L::load(dz));
                            put(d, dz, nt);
                            (L::load(sum) + d).store(sum);
                        }
                        position.take(b - a);
                    },
                    edge | at,
                    n,
                    nt | {
                        let q = position.take(n);
                        let z = load::<L>(saved, at, n) + load::<L>(pattern, q, n);
                        let d = g.grad(z, load::<L>(dz, at, n));
                        store(d, dz, at, n, nt);
                        accumulate(sums, period, d, q, n);
                    }
                ),
            }
            return;
        }
        SegmentBias::Cyclic { bias, first } => (bias, first),
        SegmentBias::None => (&[][..], 0),
    };
    let mut runs = RunBias::<L>::new(bias, first, item.segment);
    let mut run_sums = RunSums::<L>::new(region.0, item.segment, sums);
    match dy {
        Some(dy) => walk!(
            L,
            len,
            region,
            |_at| runs.end,
            stretch | a,
            b,
            nt | {
                let bias = runs.current;
                let io = vectors::<L>(saved, a, b).zip(vectors::<L>(dy, a, b));
                let io = io.zip(vectors_mut::<L>(dz, a, b));
                if run_sums.sums.is_empty() {
                    for ((s, dy), dz) in io {
                        put(g.grad(L::load(s) + bias, L::load(dy)), dz, nt);
                    }
                } else {
                    let mut acc = run_sums.acc;
                    for ((s, dy), dz) in io {
                        let d = g.grad(L::load(s) + bias, L::load(dy));
                        put(d, dz, nt);
                        acc = acc + d;
                    }
                    run_sums.acc = acc;
                }
                run_sums.reached(b);
                runs.step(b);
            },
            edge | at,
            n,
            nt | {
                let z = load::<L>(saved, at, n) + runs.at(at, n);
                let d = g.grad(z, load::<L>(dy, at, n));
                store(d, dz, at, n, nt);
                run_sums.add(d, dz, at, n);
                runs.step(at + n);
            }
        ),
        None => walk!(
            L,
            len,
            region,
            |_at| runs.end,
            stretch | a,
            b,
            nt | {
                let bias = runs.current;
                let io = vectors::<L>(saved, a, b).zip(vectors_mut::<L>(dz, a, b));
                if run_sums.sums.is_empty() {
                    for (s, dz) in io {
                        put(g.grad(L::load(s) + bias, L::load(dz)), dz, nt);
                    }
                } else {
                    let mut acc = run_sums.acc;
                    for (s, dz) in io {
                        let d = g.grad(L::load(s) + bias, L::load(dz));
                        put(d, dz, nt);
                        acc = acc + d;
                    }
                    run_sums.acc = acc;
                }
                run_sums.reached(b);
                runs.step(b);
            },
            edge | at,
            n,
            nt | {
                let z = load::<L>(saved, at, n) + runs.at(at, n);
                let d = g.grad(z, load::<L>(dz, at, n));
                store(d, dz, at, n, nt);
                run_sums.add(d, dz, at, n);
                runs.step(at + n);
            }
        ),
    }
}

/// y = f(x) for one of the vector-math functions.
#[inline(always)]
pub(super) fn math<L: Lanes>(function: MathFunction, x: &[f32], y: &mut [f32]) {
    macro_rules! map {
        ($f:path) => {
            walk!(
                L,
                y.len(),
                stream_region::<L>(y, false),
                |_at| usize::MAX,
                stretch | a,
                b,
                _nt | {
                    for (x, y) in vectors::<L>(x, a, b).zip(vectors_mut::<L>(y, a, b)) {
                        $f(L::load(x)).store(y);
                    }
                },
                edge | at,
                n,
                nt | {
                    store($f(load::<L>(x, at, n)), y, at, n, nt);
                }
            )
        };
    }
    match function {
        MathFunction::Exp => map!(vmath::exp),
        MathFunction::Tanh => map!(vmath::tanh),
        MathFunction::Sigmoid => map!(vmath::sigmoid),
        MathFunction::Erf => map!(vmath::erf),
    }
}
