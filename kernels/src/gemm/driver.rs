//! The BLIS loop nest around the microkernel: blocking, packing, threading, storing.
//!
//! ```text
//! loop 5: for each NC-wide column block jc of C
//!   loop 4: for each KC-deep slice pc of the product      (in order: never split)
//!           pack op(B)[pc, jc] into NR-wide micro-panels  (threads share the panels)
//!     loop 3: for each MC-tall row block ic               ┐ threads take (ic, jr-range)
//!             pack op(A)[ic, pc] into MR-tall micro-panels │ work items
//!       loop 2: for each micro-panel jr of the B block     │
//!         loop 1: for each micro-panel ir of the A block   │
//!                 microkernel → tile → store with epilogue ┘
//! ```
//!
//! Every C tile is computed by the same sequence of operations whatever the thread
//! count, so results are bitwise identical for 1 thread and for 16.

use super::blocking::Blocking;
use super::epilogue::{Bias, Epilogue};
use super::microkernel::{self, DirectStore, MicroKernel};
use super::pack::{pack_panels, packed_len, StridedMatrix};
use super::store::{activate_tile, store_tile, COut, StoreStep, TilePos};
use super::workspace::{with_buffer, Buffer};
use crate::arch::{CacheSizes, Isa};
use crate::eltwise::Activation;
use crate::parallel::{for_each_chunk_mut, for_each_index, Parallelism};

/// The largest tile any microkernel computes (6 × 16).
const MAX_TILE: usize = 96;

/// One validated GEMM: op(A) is `m × k`, op(B) `k × n`, C `m × n`.
pub(crate) struct Problem<'a> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: StridedMatrix<'a>,
    pub b: StridedMatrix<'a>,
    pub c: COut,
    pub epilogue: Epilogue<'a>,
}

impl Problem<'_> {
    /// Cᵀ = op(B)ᵀ · op(A)ᵀ: the same product with the roles of rows and columns swapped.
    fn transposed(self) -> Self {
        Problem {
            m: self.n,
            n: self.m,
            k: self.k,
            a: self.b.t(),
            b: self.a.t(),
            c: self.c.transposed(),
            epilogue: self.epilogue.transposed(),
        }
    }
}

/// Runs `problem` on `isa` with `par` threads. The caller has validated everything.
pub(crate) fn run(isa: Isa, problem: Problem<'_>, par: Parallelism) {
    // Stores are fastest along contiguous rows: turn a column-major C into a row-major Cᵀ.
    let problem = if problem.c.col_stride != 1 && problem.c.row_stride == 1 {
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
    let blocking = Blocking::for_tile(kernel.mr, kernel.nr, CacheSizes::detect());
    run_blocked(&problem, kernel, blocking, par);
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

fn run_blocked(p: &Problem<'_>, kernel: MicroKernel, blocking: Blocking, par: Parallelism) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let threads = par.threads();
    for jc in (0..p.n).step_by(blocking.nc) {
        let nc = blocking.nc.min(p.n - jc);
        let b_panels = nc.div_ceil(nr);
        for pc in (0..p.k).step_by(blocking.kc) {
            let kc = blocking.kc.min(p.k - pc);
            let step = StoreStep {
                first: pc == 0,
                last: pc + kc == p.k,
                epilogue: &p.epilogue,
            };
            with_buffer(Buffer::PackB, packed_len(nc, kc, nr), |b_pack| {
                // op(B)'s columns become the panels' rows: pack its transpose.
                for_each_chunk_mut(par, b_pack, kc * nr, |q, panel| {
                    let j = jc + q * nr;
                    pack_panels(p.b.t(), (j, nr.min(jc + nc - j)), (pc, kc), nr, panel);
                });
                let b_pack = &*b_pack;

                // Work items: row blocks, each split into column ranges when there are
                // fewer row blocks than threads (skinny M).
                let row_blocks = p.m.div_ceil(blocking.mc);
                let col_splits = if row_blocks >= threads {
                    1
                } else {
                    threads.div_ceil(row_blocks).min(b_panels)
                };
                for_each_index(par, row_blocks * col_splits, |item| {
                    let (rb, cs) = (item / col_splits, item % col_splits);
                    let i0 = rb * blocking.mc;
                    let mc = blocking.mc.min(p.m - i0);
                    let panels = (cs * b_panels / col_splits)..((cs + 1) * b_panels / col_splits);
                    with_buffer(Buffer::PackA, packed_len(mc, kc, mr), |a_pack| {
                        pack_panels(p.a, (i0, mc), (pc, kc), mr, a_pack);
                        let mut tile = [0.0f32; MAX_TILE];
                        for jr in panels {
                            let b_panel = &b_pack[jr * kc * nr..(jr + 1) * kc * nr];
                            let j0 = jc + jr * nr;
                            for (ir, a_panel) in a_pack.chunks_exact(kc * mr).enumerate() {
                                let pos = TilePos {
                                    i0: i0 + ir * mr,
                                    j0,
                                    rows: mr.min(i0 + mc - (i0 + ir * mr)),
                                    cols: nr.min(jc + nc - j0),
                                };
                                compute_and_store(p, kernel, kc, a_panel, b_panel, pos, step, &mut tile);
                            }
                        }
                    });
                });
            });
        }
    }
}

/// Computes one tile and merges it into C: straight from the registers when C's rows are
/// contiguous (where the ISA can), through the tile buffer otherwise.
#[allow(clippy::too_many_arguments)]
fn compute_and_store(
    p: &Problem<'_>,
    kernel: MicroKernel,
    kc: usize,
    a_panel: &[f32],
    b_panel: &[f32],
    pos: TilePos,
    step: StoreStep<'_>,
    tile: &mut [f32; MAX_TILE],
) {
    let activation = p.epilogue.activation;
    match kernel.compute_into {
        Some(compute_into) if p.c.col_stride == 1 => {
            let (row_bias, col_bias) = match p.epilogue.bias {
                Bias::PerRow(b) if step.last => (Some(b[pos.i0..pos.i0 + pos.rows].as_ptr()), None),
                Bias::PerCol(b) if step.last => (None, Some(b[pos.j0..pos.j0 + pos.cols].as_ptr())),
                _ => (None, None),
            };
            let out = DirectStore {
                c: p.c.element_ptr(pos.i0, pos.j0),
                row_stride: p.c.row_stride,
                rows: pos.rows,
                cols: pos.cols,
                alpha: p.epilogue.alpha,
                beta: if step.first { p.epilogue.beta } else { 1.0 },
                row_bias,
                col_bias,
                relu: step.last && activation == Activation::Relu,
            };
            // SAFETY: the panels hold kc·mr and kc·nr values; the tile's live rows and
            // columns are contiguous rows (col_stride 1) inside C (validated strides) that
            // no other work item covers; the biases were sliced to the live rows / columns.
            unsafe { compute_into(kc, a_panel, b_panel, &out) };
            if step.last && !matches!(activation, Activation::Identity | Activation::Relu) {
                // SAFETY: the same tile, still ours.
                unsafe { activate_tile(p.c, pos, activation) };
            }
        }
        _ => {
            (kernel.compute)(kc, a_panel, b_panel, tile);
            // SAFETY: the tile lies in C (validated strides) and no other work item
            // covers these rows and columns.
            unsafe { store_tile(p.c, pos, tile, kernel.nr, step) };
        }
    }
}
