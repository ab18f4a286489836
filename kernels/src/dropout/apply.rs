//! y = x·factor with the factor scale or 0 from the mask bits, generic over [`Lanes`].
//!
//! The factor of a lane is (1.0 or 0.0 from a table indexed by a mask byte) × scale,
//! exact either way, so y = x·scale or x·0 bitwise the same on every path (x·0 keeps
//! NaN and the sign of zero, as PyTorch's x·mask does).

use crate::eltwise::dispatch::lanes_dispatch;
use crate::eltwise::lanes::Lanes;

/// Lane j of entry b is 1.0 when bit j of b is set, else 0.0.
static BYTE_LANES: [[f32; 8]; 256] = byte_lanes();

const fn byte_lanes() -> [[f32; 8]; 256] {
    let mut table = [[0.0f32; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let mut j = 0;
        while j < 8 {
            if (b >> j) & 1 == 1 {
                table[b][j] = 1.0;
            }
            j += 1;
        }
        b += 1;
    }
    table
}

/// Bit `k` of the packed mask.
#[inline(always)]
fn bit(words: &[u32], k: usize) -> bool {
    (words[k / 32] >> (k % 32)) & 1 == 1
}

/// y\[k\] = x\[k\]·(bit k of `words` ? scale : 0); `stream`: bypass the caches for y.
#[inline(always)]
fn apply_words<L: Lanes>(words: &[u32], scale: f32, x: &[f32], y: &mut [f32], stream: bool) {
    let s = L::splat(scale);
    let full = x.len() / 8 * 8;
    for k in (0..full).step_by(8) {
        let byte = (words[k / 32] >> (k % 32)) & 0xff;
        let table = &BYTE_LANES[byte as usize];
        let mut sub = 0;
        while sub < 8 {
            let v = L::load(&x[k + sub..]) * (L::load(&table[sub..]) * s);
            let out = &mut y[k + sub..];
            if stream {
                v.store_stream(out);
            } else {
                v.store(out);
            }
            sub += L::LANES;
        }
    }
    if stream {
        L::stream_fence();
    }
    for k in full..x.len() {
        let factor = if bit(words, k) { 1.0 } else { 0.0 };
        y[k] = x[k] * (factor * scale);
    }
}

lanes_dispatch! {
    /// [`apply_words`] on `isa`.
    pub(super) fn apply(words: &[u32], scale: f32, x: &[f32], y: &mut [f32], stream: bool) => apply_words
}
