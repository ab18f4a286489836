//! How a batch-norm call is cut into work items, and how the items are run.
//!
//! The cut depends on the shape alone, never on the thread count, and every partial sum
//! belongs to one item and is merged in item order: results are bitwise the same for
//! every [`Parallelism`].

use super::BatchNormDesc;
use crate::layout::Layout;
use crate::parallel::{for_each_index, Parallelism};
use std::sync::{Mutex, PoisonError};

/// Values of one run summed as one f32 block (16 KiB): small enough to stay in L1 for
/// the block's second pass and to keep f32 sums accurate, large enough to amortize
/// the f64 merge.
pub(super) const PIECE: usize = 4096;

/// Values per row block (64 KiB): a block is read twice for its statistics, the second
/// time from L2.
const ROW_BLOCK: usize = 16 * 1024;

/// The two shapes of data (see `kernel.rs`).
#[derive(Debug, Clone, Copy)]
pub(super) enum Regime {
    /// NCHW with spatial > 1: `run` contiguous values per (image, channel); work items
    /// are channels.
    Runs { run: usize },
    /// NHWC, or spatial = 1 (where NCHW is the same memory): rows of `channels` values;
    /// work items are blocks of `rows` rows.
    Rows { rows: usize },
}

impl Regime {
    pub fn of(desc: &BatchNormDesc) -> Regime {
        if desc.layout == Layout::Nchw && desc.spatial > 1 {
            Regime::Runs { run: desc.spatial }
        } else {
            Regime::Rows {
                rows: (ROW_BLOCK / desc.channels).max(1),
            }
        }
    }
}

/// Values of channel `c` in image `n` of an NCHW tensor with runs of `run` values.
pub(super) fn run_of(x: &[f32], channels: usize, run: usize, n: usize, c: usize) -> &[f32] {
    let start = (n * channels + c) * run;
    &x[start..start + run]
}

/// Runs `work(c, runs)` for every channel `c`, with `runs` the channel's runs of `out`
/// in image order, spread over `par`; returns the results in channel order.
pub(super) fn per_channel<'a, R: Send + Default>(
    par: Parallelism,
    out: &'a mut [f32],
    channels: usize,
    run: usize,
    work: impl Fn(usize, &mut [&'a mut [f32]]) -> R + Sync,
) -> Vec<R> {
    let mut groups: Vec<(Vec<&'a mut [f32]>, R)> =
        (0..channels).map(|_| (Vec::new(), R::default())).collect();
    for (i, r) in out.chunks_mut(run).enumerate() {
        groups[i % channels].0.push(r);
    }
    let tasks: Vec<Mutex<(Vec<&'a mut [f32]>, R)>> = groups.into_iter().map(Mutex::new).collect();
    for_each_index(par, channels, |c| {
        let mut task = tasks[c].lock().unwrap_or_else(PoisonError::into_inner);
        let (runs, result) = &mut *task;
        *result = work(c, runs);
    });
    tasks
        .into_iter()
        .map(|t| t.into_inner().unwrap_or_else(PoisonError::into_inner).1)
        .collect()
}

/// Blocks of `rows` rows of `channels` values in a tensor of `len` values.
pub(super) fn row_blocks(len: usize, channels: usize, rows: usize) -> usize {
    len.div_ceil(rows * channels)
}
