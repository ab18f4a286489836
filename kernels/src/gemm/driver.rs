//! The BLIS loop nest around the microkernel: blocking, packing, threading, storing.
//!
//! ```text
//! threads: C is cut into a grid of parts of whole tiles, one per thread
//! loop 5: for each NC-wide column block jc of the part
//!   loop 4: for each KC-deep slice pc of the product      (in order: never split)
//!           pack op(B)[pc, jc] into NR-wide micro-panels
//!     loop 3: for each MC-tall row block ic of the part
//!             pack op(A)[ic, pc] into MR-tall micro-panels
//!       loops 2 and 1: for each tile of the block, row panels or column panels first
//!                 microkernel → tile → store with epilogue
//!                 (one call of the ISA's sweep for the whole block, where it has one)
//! ```
//!
//! Every element of C is summed over the same KC slices in the same order, whichever
//! part and tile it falls in, so results are bitwise identical for 1 thread and for 16.

use super::blocking::Blocking;
use super::epilogue::{Bias, Epilogue};
use super::microkernel::{self, for_each_tile, APanels, DirectStore, MicroKernel, TileOrder};
use super::operand::OperandA;
use super::pack::{pack_panels, packed_len, StridedMatrix};
use super::store::{activate_tile, store_tile, COut, StoreStep, TilePos};
use crate::arch::{CacheSizes, FlushDenormals, Isa};
use crate::eltwise::Activation;
use crate::parallel::{for_each_index, Parallelism};
use crate::workspace::{with_buffer, Buffer};
use std::ops::Range;

/// The largest tile any microkernel computes (6 × 16).
const MAX_TILE: usize = 96;

const F32_BYTES: usize = std::mem::size_of::<f32>();

/// One validated GEMM: op(A) is `m × k`, op(B) `k × n`, C `m × n`.
pub(crate) struct Problem<'a> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: OperandA<'a>,
    pub b: StridedMatrix<'a>,
    pub c: COut,
    pub epilogue: Epilogue<'a>,
}

impl Problem<'_> {
    /// Whether the roles of A and B can swap: an image's windows are only ever packed as A.
    fn can_transpose(&self) -> bool {
        matches!(self.a, OperandA::Matrix(_))
    }

    /// Cᵀ = op(B)ᵀ · op(A)ᵀ: the same product with the roles of rows and columns swapped
    /// (the problem unchanged when it [cannot](Self::can_transpose)).
    fn transposed(self) -> Self {
        let OperandA::Matrix(a) = self.a else {
            return self;
        };
        Problem {
            m: self.n,
            n: self.m,
            k: self.k,
            a: OperandA::Matrix(self.b.t()),
            b: a.t(),
            c: self.c.transposed(),
            epilogue: self.epilogue.transposed(),
        }
    }
}

/// Runs `problem` on `isa` with `par` threads. The caller has validated everything.
pub(crate) fn run(isa: Isa, problem: Problem<'_>, par: Parallelism) {
    // Stores are fastest along contiguous rows: turn a column-major C into a row-major Cᵀ.
    let problem =
        if problem.c.col_stride != 1 && problem.c.row_stride == 1 && problem.can_transpose() {
            problem.transposed()
        } else {
            problem
        };
    if problem.m == 0 || problem.n == 0 {
        return;
    }
    if problem.k == 0 || problem.epilogue.alpha == 0.0 {
        // BLAS: with no product to add, A and B are not read.
        apply_epilogue_only(&problem);
        return;
    }
    let kernel = microkernel::for_isa(isa);
    let problem = if narrow_output_prefers_transpose(&problem, kernel) && problem.can_transpose() {
        problem.transposed()
    } else {
        problem
    };
    let blocking = Blocking::for_tile(kernel.mr, kernel.nr, CacheSizes::detect());
    run_blocked(&problem, kernel, blocking, par);
}

/// Whether a C narrower than one tile (a 32 × 9 weight gradient, say) is better computed
/// as Cᵀ, where it spans fewer padded tile lanes. Only for small C: the transposed C has
/// strided rows, which the store merges element by element.
fn narrow_output_prefers_transpose(p: &Problem<'_>, kernel: MicroKernel) -> bool {
    const SMALL_OUTPUT: usize = 1 << 16;
    let lanes = |rows: usize, cols: usize| {
        rows.div_ceil(kernel.mr) * kernel.mr * cols.div_ceil(kernel.nr) * kernel.nr
    };
    p.n < kernel.nr && p.m * p.n <= SMALL_OUTPUT && lanes(p.n, p.m) < lanes(p.m, p.n)
}

/// C ← act(beta·C + bias), one row at a time.
fn apply_epilogue_only(p: &Problem<'_>) {
    let zeros = vec![0.0f32; p.n];
    let step = StoreStep {
        first: true,
        last: true,
        epilogue: &p.epilogue,
    };
    for i in 0..p.m {
        let pos = TilePos {
            i0: i,
            j0: 0,
            rows: 1,
            cols: p.n,
        };
        // SAFETY: the row lies in C (validated strides) and this thread is the only writer.
        unsafe { store_tile(p.c, pos, &zeros, p.n, step) };
    }
}

/// Problems smaller than this many multiply-adds per thread run on fewer threads: waking
/// a pool costs more than it saves below about 1 M multiply-adds (≈ 20 µs of work).
const MIN_MACS_PER_THREAD: usize = 1 << 20;

fn run_blocked(p: &Problem<'_>, kernel: MicroKernel, blocking: Blocking, par: Parallelism) {
    let macs = p.m.saturating_mul(p.n).saturating_mul(p.k);
    let threads = par.threads().min((macs / MIN_MACS_PER_THREAD).max(1));
    let grid = Grid::for_threads(threads, (p.m, kernel.mr), (p.n, kernel.nr));
    let par = if grid.parts() == 1 {
        Parallelism::Sequential
    } else {
        par
    };
    // Each part of C is a whole GEMM of its own: one parallel region per call, no barrier,
    // and every element summed in the same order whichever part it falls in.
    for_each_index(par, grid.parts(), |part| {
        // Per part: each thread has its own floating-point control word.
        let _flush = FlushDenormals::new();
        let (rows, cols) = grid.part(part, (p.m, kernel.mr), (p.n, kernel.nr));
        run_part(p, kernel, blocking, rows, cols);
    });
}

/// How C is cut among threads: `row_parts × col_parts` rectangles of whole tiles.
struct Grid {
    row_parts: usize,
    col_parts: usize,
}

impl Grid {
    /// The split of an `m × n` C (tiles `mr × nr`) into `threads` parts that minimizes
    /// the largest part's work: its multiply-adds (rows·cols, at ~16 per cycle) plus its
    /// packing (each part packs its own A rows and B columns, ~1 value per cycle).
    /// Splitting along the long side keeps the duplicated packing small.
    fn for_threads(threads: usize, (m, mr): (usize, usize), (n, nr): (usize, usize)) -> Grid {
        const MACS_PER_PACKED_VALUE: usize = 16;
        let (m_tiles, n_tiles) = (m.div_ceil(mr), n.div_ceil(nr));
        let mut best = Grid {
            row_parts: 1,
            col_parts: 1,
        };
        let mut best_cost = usize::MAX;
        for row_parts in (1..=threads).filter(|r| threads.is_multiple_of(*r)) {
            let col_parts = threads / row_parts;
            if row_parts > m_tiles.max(1) || col_parts > n_tiles.max(1) {
                continue;
            }
            let rows = m_tiles.div_ceil(row_parts) * mr;
            let cols = n_tiles.div_ceil(col_parts) * nr;
            let cost = rows * cols + MACS_PER_PACKED_VALUE * (rows + cols);
            if cost < best_cost {
                best_cost = cost;
                best = Grid {
                    row_parts,
                    col_parts,
                };
            }
        }
        best
    }

    fn parts(&self) -> usize {
        self.row_parts * self.col_parts
    }

    /// Row and column ranges of part `index`, cut on tile boundaries (`mr`, `nr`).
    fn part(
        &self,
        index: usize,
        (m, mr): (usize, usize),
        (n, nr): (usize, usize),
    ) -> (Range<usize>, Range<usize>) {
        let cut = |len: usize, tile: usize, parts: usize, i: usize| {
            let tiles = len.div_ceil(tile);
            let at = |k: usize| (k * tiles / parts * tile).min(len);
            at(i)..at(i + 1)
        };
        (
            cut(m, mr, self.row_parts, index / self.col_parts),
            cut(n, nr, self.col_parts, index % self.col_parts),
        )
    }
}

/// The BLIS loop nest over the `rows × cols` part of C, on the calling thread.
fn run_part(
    p: &Problem<'_>,
    kernel: MicroKernel,
    blocking: Blocking,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let blocking = blocking.balanced((rows.len(), mr), (cols.len(), nr), p.k);
    let l2_half = CacheSizes::detect().l2_or_default() / 2;
    for jc in cols.clone().step_by(blocking.nc) {
        let nc = blocking.nc.min(cols.end - jc);
        for pc in (0..p.k).step_by(blocking.kc) {
            let kc = blocking.kc.min(p.k - pc);
            let step = StoreStep {
                first: pc == 0,
                last: pc + kc == p.k,
                epilogue: &p.epilogue,
            };
            with_buffer(Buffer::PackB, packed_len(nc, kc, nr), |b_pack| {
                // op(B)'s columns become the panels' rows: pack its transpose.
                pack_panels(p.b.t(), (jc, nc), (pc, kc), nr, b_pack);
                for ic in rows.clone().step_by(blocking.mc) {
                    let mc = blocking.mc.min(rows.end - ic);
                    let block = TilePos {
                        i0: ic,
                        j0: jc,
                        rows: mc,
                        cols: nc,
                    };
                    // With the whole B block in L2 (shallow K), sweeping C row panel by
                    // row panel keeps the stores along a few rows: few pages, long write
                    // streams.
                    let order = if b_pack.len() * F32_BYTES <= l2_half {
                        TileOrder::RowPanels
                    } else {
                        TileOrder::ColumnPanels
                    };
                    let b = BPack(b_pack);
                    match a_in_place(p, kernel, block, (pc, kc)) {
                        Some(a) => compute_block(p, kernel, kc, (a, b), block, order, step),
                        None => with_buffer(Buffer::PackA, packed_len(mc, kc, mr), |a_pack| {
                            p.a.pack((ic, mc), (pc, kc), mr, a_pack);
                            let a = APanels::packed(a_pack, kc, mr);
                            compute_block(p, kernel, kc, (a, b), block, order, step);
                        }),
                    }
                }
            });
        }
    }
}

/// B blocks of at most this many micro-panels do not pay for packing the A block that
/// meets them: each A value would be read only this many times.
const A_IN_PLACE_MAX_B_PANELS: usize = 4;

/// A's block `block.rows × kc` (from row `block.i0`, column `pc`) as the sweep can read
/// it where it lies, without packing: when the kernel sweeps, the block meets few B
/// micro-panels (a Winograd point's tiles × 32 channels, say), and A is row-major (each
/// row's values contiguous) or column-major (each step's six values contiguous).
fn a_in_place<'a>(
    p: &Problem<'a>,
    kernel: MicroKernel,
    block: TilePos,
    (pc, kc): (usize, usize),
) -> Option<APanels<'a>> {
    let OperandA::Matrix(a) = p.a else {
        return None;
    };
    let few_b_panels = block.cols.div_ceil(kernel.nr) <= A_IN_PLACE_MAX_B_PANELS;
    let contiguous = a.col_stride == 1 || a.row_stride == 1;
    if !(sweeps(p, kernel) && contiguous && few_b_panels) {
        return None;
    }
    let start = block.i0 * a.row_stride + pc * a.col_stride;
    let panels = APanels {
        data: &a.data[start..],
        panel_step: kernel.mr * a.row_stride,
        row_stride: a.row_stride,
        k_stride: a.col_stride,
    };
    // Validated strides: every row of the block holds its kc values.
    panels.holds(block.rows, kc, kernel.mr).then_some(panels)
}

/// Whether `kernel` can sweep whole blocks of `p`'s C: C's rows must be contiguous.
fn sweeps(p: &Problem<'_>, kernel: MicroKernel) -> bool {
    kernel.sweep_into.is_some() && p.c.col_stride == 1
}

/// A packed B block: ⌈nc / nr⌉ micro-panels of `kc·nr` values.
#[derive(Clone, Copy)]
struct BPack<'a>(&'a [f32]);

/// Computes one packed block of C (`block`, in C's coordinates) and merges it into C:
/// straight from the registers, one sweep, when C's rows are contiguous (where the ISA
/// can); tile by tile through the tile buffer otherwise.
fn compute_block(
    p: &Problem<'_>,
    kernel: MicroKernel,
    kc: usize,
    (a, BPack(b_pack)): (APanels<'_>, BPack<'_>),
    block: TilePos,
    order: TileOrder,
    step: StoreStep<'_>,
) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let activation = p.epilogue.activation;
    let in_c = |pos: TilePos| TilePos {
        i0: block.i0 + pos.i0,
        j0: block.j0 + pos.j0,
        ..pos
    };
    match kernel.sweep_into {
        Some(sweep_into) if sweeps(p, kernel) => {
            let (rows, cols) = (
                block.i0..block.i0 + block.rows,
                block.j0..block.j0 + block.cols,
            );
            let (row_bias, col_bias) = match p.epilogue.bias {
                Bias::PerRow(b) if step.last => (Some(b[rows].as_ptr()), None),
                Bias::PerCol(b) if step.last => (None, Some(b[cols].as_ptr())),
                _ => (None, None),
            };
            let out = DirectStore {
                c: p.c.element_ptr(block.i0, block.j0),
                row_stride: p.c.row_stride,
                rows: block.rows,
                cols: block.cols,
                alpha: p.epilogue.alpha,
                beta: if step.first { p.epilogue.beta } else { 1.0 },
                row_bias,
                col_bias,
                relu: step.last && activation == Activation::Relu,
            };
            // The activations the store cannot apply run over each tile once it is out.
            let mut activate = |pos: TilePos| {
                // SAFETY: the tile just stored: inside C (validated strides) and covered
                // by no other work item.
                unsafe { activate_tile(p.c, in_c(pos), activation) };
            };
            let after_tile: Option<&mut dyn FnMut(TilePos)> =
                if step.last && !matches!(activation, Activation::Identity | Activation::Relu) {
                    Some(&mut activate)
                } else {
                    None
                };
            // SAFETY: `a` holds the block's rows (packed above for these rows and kc, or
            // checked by `a_in_place`), the B pack its panels; the block's rows are
            // contiguous (col_stride 1) inside C (validated strides), and no other work
            // item covers them; the biases were sliced to the block's rows / columns.
            unsafe { sweep_into(kc, a, b_pack, order, &out, after_tile) };
        }
        _ => {
            let mut tile = [0.0f32; MAX_TILE];
            // Only packed A blocks come here (`a_in_place` needs a sweep).
            for_each_tile((block.rows, mr), (block.cols, nr), order, |ia, jb, pos| {
                let a_panel = &a.data[ia * a.panel_step..][..kc * mr];
                let b_panel = &b_pack[jb * kc * nr..(jb + 1) * kc * nr];
                (kernel.compute)(kc, a_panel, b_panel, &mut tile);
                // SAFETY: the tile lies in C (validated strides) and no other work item
                // covers these rows and columns.
                unsafe { store_tile(p.c, in_c(pos), &tile, nr, step) };
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Grid;

    fn split(threads: usize, m: usize, n: usize) -> (usize, usize) {
        let g = Grid::for_threads(threads, (m, 6), (n, 16));
        (g.row_parts, g.col_parts)
    }

    #[test]
    fn threads_split_the_long_side() {
        assert_eq!(split(2, 3136, 128), (2, 1));
        assert_eq!(split(2, 64, 7744), (1, 2));
        assert_eq!(split(16, 2048, 2048), (4, 4));
        assert_eq!(split(4, 6, 10_000), (1, 4));
        // Never more parts along a side than it has tiles.
        assert_eq!(split(3, 5, 16), (1, 1));
    }
}
