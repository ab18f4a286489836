//! How a batch-norm call is cut into work items, and how the items are run.
//!
//! The cut depends on the shape alone, never on the thread count, and every partial sum
//! belongs to one item and is merged in item order: results are bitwise the same for
//! every [`Parallelism`](crate::parallel::Parallelism).

use super::BatchNormDesc;
use crate::layout::Layout;

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
    /// are groups of consecutive runs, swept in memory order.
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

/// Runs per work item of an NCHW pass (about 64 KiB of each tensor).
pub(super) fn runs_per_item(run: usize) -> usize {
    (16 * 1024 / run).max(1)
}

/// Blocks of `rows` rows of `channels` values in a tensor of `len` values.
pub(super) fn row_blocks(len: usize, channels: usize, rows: usize) -> usize {
    len.div_ceil(rows * channels)
}
