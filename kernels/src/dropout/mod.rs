//! Dropout, forward and backward, with a counter-based keep mask.
//!
//! Element i is kept iff a hash of (seed, step, i) clears a threshold set by p (see
//! `rng.rs`): the mask depends only on those, never on the thread count or the ISA
//! path, and the backward can regenerate it instead of storing it. Kept elements are
//! scaled by 1/(1 − p): y = x·mask/(1 − p), computed as x·(scale or 0), so a dropped
//! NaN stays NaN, as with PyTorch's x·mask. p = 0 is the identity, p = 1 gives x·0
//! (zeros for finite x, as PyTorch); p outside [0, 1] or NaN is an error.
//!
//! # The stored mask
//!
//! Bit-packed u32 words, [`mask_words`]`(len)` of them: bit j of word w is element
//! 32w + j (1 = kept); the bits past the last element are 0. One bit per element, so
//! storing it costs 1/32 of the tensor's traffic.
//!
//! The per-element hash (two `lowbias32` rounds keyed by (seed, step)) is vectorized on
//! AVX2 and `wide`; threads take fixed chunks of 2¹⁶ elements. Outputs larger than the
//! last-level cache are written with streaming stores on AVX2.

mod apply;
mod mask;
mod rng;

use crate::arch::{CacheSizes, Isa};
use crate::error::{check_exact, KernelError, Result};
use crate::parallel::{for_each_item, Parallelism};
use rng::Keys;

/// Dropout's parameters: the drop probability and the stream the mask comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Probability of zeroing an element, in [0, 1].
    pub p: f32,
    /// Chooses the random stream (e.g. per layer and per run).
    pub seed: u64,
    /// Chooses the mask within the stream (e.g. the training step).
    pub step: u64,
}

impl Dropout {
    pub fn new(p: f32, seed: u64, step: u64) -> Self {
        Dropout { p, seed, step }
    }

    /// Rejects p outside [0, 1] or NaN.
    pub fn validate(&self) -> Result<()> {
        check_p(self.p)
    }

    /// The factor of kept elements, 1/(1 − p) rounded to f32 (0 for p = 1, where
    /// nothing is kept).
    pub fn scale(&self) -> f32 {
        scale_of(self.p)
    }

    /// Whether element `index` is kept: the definition every path follows.
    pub fn keeps(&self, index: u64) -> bool {
        match self.p {
            p if p <= 0.0 => true,
            p if p >= 1.0 => false,
            p => rng::keeps_scalar(
                Keys::new(self.seed, self.step, index >> 32),
                rng::threshold(p),
                index as u32,
            ),
        }
    }
}

fn check_p(p: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(KernelError::invalid(
            "dropout p",
            format!("must be in [0, 1], got {p}"),
        ));
    }
    Ok(())
}

fn scale_of(p: f32) -> f32 {
    if p >= 1.0 {
        0.0
    } else {
        (1.0 / (1.0 - f64::from(p))) as f32
    }
}

/// Mask words for a tensor of `len` elements: ⌈len/32⌉.
pub fn mask_words(len: usize) -> usize {
    len.div_ceil(32)
}

/// Elements per thread chunk: whole mask words, and a divisor of 2³² so that no chunk
/// straddles two key blocks.
const CHUNK: usize = 1 << 16;
/// Mask words generated at a time when the mask is not stored (a buffer in L1).
const BLOCK_WORDS: usize = 64;

/// How the mask words of a call are made.
#[derive(Clone, Copy)]
enum Source {
    All,
    None,
    Hash { seed: u64, step: u64, t: u32 },
}

impl Source {
    fn of(d: &Dropout) -> Source {
        if d.p <= 0.0 {
            Source::All
        } else if d.p >= 1.0 {
            Source::None
        } else {
            Source::Hash {
                seed: d.seed,
                step: d.step,
                t: rng::threshold(d.p),
            }
        }
    }

    /// The words of the elements from `start` (a multiple of 32) on, `len` of them
    /// (the bits past `len` cleared).
    fn fill(self, isa: Isa, start: usize, len: usize, words: &mut [u32]) {
        match self {
            Source::All => words.fill(u32::MAX),
            Source::None => words.fill(0),
            Source::Hash { seed, step, t } => {
                let keys = Keys::new(seed, step, (start as u64) >> 32);
                mask::fill(isa, keys, t, start as u32, words);
            }
        }
        if !len.is_multiple_of(32) {
            if let Some(last) = words.last_mut() {
                *last &= (1u32 << (len % 32)) - 1;
            }
        }
    }
}

/// Whether outputs of `len` floats bypass the caches.
fn streams(len: usize) -> bool {
    len.saturating_mul(4) >= CacheSizes::detect().l3_or_default()
}

/// y = x·mask·scale with the mask from `source`, stored to `mask_out` when given.
/// Lengths are checked by the caller.
fn run_generated(
    isa: Isa,
    source: Source,
    scale: f32,
    x: &[f32],
    y: &mut [f32],
    mask_out: Option<&mut [u32]>,
    par: Parallelism,
) {
    let stream = streams(x.len());
    let mask_chunks = mask_out
        .into_iter()
        .flat_map(|m| m.chunks_mut(CHUNK / 32))
        .map(Some)
        .chain(std::iter::repeat_with(|| None));
    let items = x.chunks(CHUNK).zip(y.chunks_mut(CHUNK)).zip(mask_chunks);
    for_each_item(par, items, |c, ((x, y), mask)| {
        let chunk_start = c * CHUNK;
        let mut buffer = [0u32; BLOCK_WORDS];
        let block = BLOCK_WORDS * 32;
        let mut mask = mask;
        for (b, (x, y)) in x.chunks(block).zip(y.chunks_mut(block)).enumerate() {
            let words = match mask.as_deref_mut() {
                Some(m) => &mut m[b * BLOCK_WORDS..b * BLOCK_WORDS + mask_words(x.len())],
                None => &mut buffer[..mask_words(x.len())],
            };
            source.fill(isa, chunk_start + b * block, x.len(), words);
            apply::apply(isa, words, scale, x, y, stream);
        }
    });
}

fn check_call(isa: Isa, par: Parallelism) -> Result<()> {
    isa.check_available()?;
    par.validate()
}

/// Dropout forward on the process's ISA path: y = x·mask/(1 − p), the mask from
/// (`d.seed`, `d.step`, element index); the mask is also stored, bit-packed (module
/// docs), when `mask` is given.
///
/// Errors: p outside [0, 1] or NaN; `y` not the length of `x`; `mask` not
/// [`mask_words`]`(x.len())` long; `Threads(0)`.
pub fn dropout_forward(
    d: &Dropout,
    x: &[f32],
    y: &mut [f32],
    mask: Option<&mut [u32]>,
    par: Parallelism,
) -> Result<()> {
    dropout_forward_on(Isa::selected()?, d, x, y, mask, par)
}

/// [`dropout_forward`] on an explicit ISA path (an error if this CPU cannot run it).
pub fn dropout_forward_on(
    isa: Isa,
    d: &Dropout,
    x: &[f32],
    y: &mut [f32],
    mask: Option<&mut [u32]>,
    par: Parallelism,
) -> Result<()> {
    check_call(isa, par)?;
    d.validate()?;
    check_exact("dropout y", x.len(), y.len())?;
    if let Some(m) = mask.as_deref() {
        check_exact("dropout mask", mask_words(x.len()), m.len())?;
    }
    run_generated(isa, Source::of(d), d.scale(), x, y, mask, par);
    Ok(())
}

/// Dropout backward on the process's ISA path, regenerating the mask from
/// (`d.seed`, `d.step`): dx = dy·mask/(1 − p) with the forward's mask.
///
/// Errors: p outside [0, 1] or NaN; `dx` not the length of `dy`; `Threads(0)`.
pub fn dropout_backward(d: &Dropout, dy: &[f32], dx: &mut [f32], par: Parallelism) -> Result<()> {
    dropout_backward_on(Isa::selected()?, d, dy, dx, par)
}

/// [`dropout_backward`] on an explicit ISA path.
pub fn dropout_backward_on(
    isa: Isa,
    d: &Dropout,
    dy: &[f32],
    dx: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    check_call(isa, par)?;
    d.validate()?;
    check_exact("dropout dx", dy.len(), dx.len())?;
    run_generated(isa, Source::of(d), d.scale(), dy, dx, None, par);
    Ok(())
}

/// Dropout backward from a stored mask, on the process's ISA path:
/// dx = dy·mask/(1 − p). Bits past the last element are ignored.
///
/// Errors: p outside [0, 1] or NaN; `dx` not the length of `dy`; `mask` not
/// [`mask_words`]`(dy.len())` long; `Threads(0)`.
pub fn dropout_backward_masked(
    p: f32,
    mask: &[u32],
    dy: &[f32],
    dx: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    dropout_backward_masked_on(Isa::selected()?, p, mask, dy, dx, par)
}

/// [`dropout_backward_masked`] on an explicit ISA path.
pub fn dropout_backward_masked_on(
    isa: Isa,
    p: f32,
    mask: &[u32],
    dy: &[f32],
    dx: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    check_call(isa, par)?;
    check_p(p)?;
    check_exact("dropout dx", dy.len(), dx.len())?;
    check_exact("dropout mask", mask_words(dy.len()), mask.len())?;
    let stream = streams(dy.len());
    let scale = scale_of(p);
    let items = dy
        .chunks(CHUNK)
        .zip(dx.chunks_mut(CHUNK))
        .zip(mask.chunks(CHUNK / 32));
    for_each_item(par, items, |_, ((dy, dx), mask)| {
        apply::apply(isa, mask, scale, dy, dx, stream);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks past 2³² elements take their keys from the high half of the index: the
    /// words every path fills there follow [`Dropout::keeps`] (no tensor that large is
    /// needed to check it).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn masks_beyond_four_billion_elements_follow_the_definition() {
        let d = Dropout::new(0.3, 11, 5);
        for start in [(1usize << 32) - CHUNK, 1 << 32, (3 << 32) + 7 * CHUNK] {
            for isa in Isa::available() {
                let len = 100;
                let mut words = vec![0u32; mask_words(len)];
                Source::of(&d).fill(isa, start, len, &mut words);
                for k in 0..len {
                    let bit = (words[k / 32] >> (k % 32)) & 1 == 1;
                    assert_eq!(bit, d.keeps((start + k) as u64), "{isa} {start} + {k}");
                }
            }
        }
    }
}
