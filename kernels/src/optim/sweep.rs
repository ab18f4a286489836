//! The shared loop of the update kernels and the cutting of their slices into work
//! items.

/// Runs `$body` for every vector of `0..$len`: `$at` its first element, `$n ≤ LANES`
/// its width (the last may be partial; `load_n`/`store_n` handle both). A macro so that
/// the body inlines into the caller's `target_feature` function.
macro_rules! sweep {
    ($L:ty, $len:expr, |$at:ident, $n:ident| $body:block) => {{
        let lanes = <$L as $crate::eltwise::lanes::Lanes>::LANES;
        let len: usize = $len;
        let mut $at = 0usize;
        while $at < len {
            let $n = lanes.min(len - $at);
            $body
            $at += $n;
        }
    }};
}

pub(super) use sweep;

/// Elements per work item: 64 KiB per array, enough to amortize the per-item cost and
/// small enough to balance the threads. Fixed, so the split never depends on threads.
pub(super) const ITEM: usize = 16 * 1024;

/// Work items of a parameter of `len` elements.
pub(super) fn items(len: usize) -> usize {
    len.div_ceil(ITEM)
}

/// `state` cut into the items' chunks, or, for a state the step does not use (empty),
/// one empty slice per item.
pub(super) fn cut(state: &mut [f32], count: usize) -> impl Iterator<Item = &mut [f32]> {
    state
        .chunks_mut(ITEM)
        .chain(std::iter::repeat_with(<&mut [f32]>::default))
        .take(count)
}
