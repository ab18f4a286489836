//! AVX2 path: 8-lane blocks on `core::arch` intrinsics.
//!
//! - `nchw_pairs`: 2-wide, stride-2 windows without column padding (the common 2 × 2
//!   pool), straight from the plane: two loads and two shuffles per window row give 8
//!   outputs' two inputs.
//! - `nchw_general`: any other window, through padded copies so that edge windows run in
//!   the vector blocks too.
//! - `nhwc`: vectors along the channels.
//!
//! Every sum runs in the scalar path's order, so results agree bit for bit with it
//! (except [`plane_sum`], which keeps 32 partial sums). The table's entries check for
//! AVX2 and FMA, then call `#[target_feature]` kernels; `unsafe` is only that call and
//! the loads and stores of bounds-checked slices.

mod nchw_general;
mod nchw_pairs;
mod nhwc;

use super::super::geometry::Geometry;
use super::Kernels;
use crate::arch::Isa;
use std::arch::x86_64::*;

pub(crate) const KERNELS: Kernels = Kernels {
    max_fwd_nchw,
    max_fwd_nhwc,
    avg_fwd_nchw,
    avg_fwd_nhwc,
    max_bwd_nchw,
    max_bwd_nhwc,
    avg_bwd_nchw,
    avg_bwd_nhwc,
    plane_sum,
    pixel_sums,
};

const LANES: usize = 8;

/// A safe table entry that checks the CPU, then runs a `#[target_feature]` kernel.
macro_rules! entry {
    ($name:ident => $kernel:path, ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        fn $name($($arg: $ty),*) $(-> $ret)? {
            assert!(
                Isa::Avx2.is_available(),
                "the AVX2 pooling kernels need AVX2 and FMA"
            );
            // SAFETY: the CPU runs AVX2 and FMA (checked above), all that the kernel
            // needs beyond its safe signature.
            unsafe { $kernel($($arg),*) }
        }
    };
}

entry!(max_fwd_nchw => max_fwd_nchw_avx2, (g: &Geometry, x: &[f32], y: &mut [f32], am: &mut [u32]));
entry!(max_fwd_nhwc => nhwc::max_fwd, (
    g: &Geometry, x: &[f32], oh: usize, y: &mut [f32], am: &mut [u32]
));
entry!(avg_fwd_nchw => avg_fwd_nchw_avx2, (
    g: &Geometry, count_include_pad: bool, x: &[f32], y: &mut [f32]
));
entry!(avg_fwd_nhwc => nhwc::avg_fwd, (
    g: &Geometry, count_include_pad: bool, x: &[f32], oh: usize, y: &mut [f32]
));
entry!(max_bwd_nchw => max_bwd_nchw_avx2, (
    g: &Geometry, dy: &[f32], am: &[u32], dx: &mut [f32]
) -> usize);
entry!(max_bwd_nhwc => nhwc::max_bwd, (
    g: &Geometry, dy: &[f32], am: &[u32], ih: usize, dx: &mut [f32]
) -> usize);
entry!(avg_bwd_nchw => avg_bwd_nchw_avx2, (
    g: &Geometry, count_include_pad: bool, dy: &[f32], dx: &mut [f32]
));
entry!(avg_bwd_nhwc => nhwc::avg_bwd, (
    g: &Geometry, count_include_pad: bool, dy: &[f32], ih: usize, dx: &mut [f32]
));
entry!(plane_sum => plane_sum_avx2, (x: &[f32]) -> f32);
entry!(pixel_sums => pixel_sums_avx2, (channels: usize, x: &[f32], y: &mut [f32]));

#[target_feature(enable = "avx2,fma")]
fn max_fwd_nchw_avx2(g: &Geometry, x: &[f32], y: &mut [f32], am: &mut [u32]) {
    if !nchw_pairs::forward_fits(g) {
        return nchw_general::max_fwd(g, x, y, am);
    }
    nchw_pairs::max_fwd(g, x, y, am)
}

#[target_feature(enable = "avx2,fma")]
fn avg_fwd_nchw_avx2(g: &Geometry, count_include_pad: bool, x: &[f32], y: &mut [f32]) {
    if !nchw_pairs::forward_fits(g) {
        return nchw_general::avg_fwd(g, count_include_pad, x, y);
    }
    nchw_pairs::avg_fwd(g, count_include_pad, x, y)
}

#[target_feature(enable = "avx2,fma")]
fn max_bwd_nchw_avx2(g: &Geometry, dy: &[f32], am: &[u32], dx: &mut [f32]) -> usize {
    if nchw_pairs::backward_fits(g) {
        nchw_pairs::max_bwd(g, dy, am, dx)
    } else {
        nchw_general::max_bwd(g, dy, am, dx)
    }
}

#[target_feature(enable = "avx2,fma")]
fn avg_bwd_nchw_avx2(g: &Geometry, count_include_pad: bool, dy: &[f32], dx: &mut [f32]) {
    if nchw_pairs::backward_fits(g) {
        nchw_pairs::avg_bwd(g, count_include_pad, dy, dx)
    } else {
        nchw_general::avg_bwd(g, count_include_pad, dy, dx)
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn load(s: &[f32]) -> __m256 {
    let s = &s[..LANES];
    // SAFETY: `s` holds 8 floats.
    unsafe { _mm256_loadu_ps(s.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn load_u32(s: &[u32]) -> __m256i {
    let s = &s[..LANES];
    // SAFETY: `s` holds 8 u32, 32 bytes.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn store(dst: &mut [f32], v: __m256) {
    let dst = &mut dst[..LANES];
    // SAFETY: `dst` holds 8 floats.
    unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn store_u32(dst: &mut [u32], v: __m256i) {
    let dst = &mut dst[..LANES];
    // SAFETY: `dst` holds 8 u32, 32 bytes.
    unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), v) }
}

/// A mask of the first `min(n, 8)` lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn first_lanes(n: usize) -> __m256i {
    let n = _mm256_set1_epi32(n.min(LANES) as i32);
    _mm256_cmpgt_epi32(n, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// The first `min(8, s.len())` floats of `s`, zeros in the other lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn load_lanes(s: &[f32]) -> __m256 {
    if s.len() >= LANES {
        return load(s);
    }
    // SAFETY: the mask enables the first `s.len()` lanes only; masked-off lanes are
    // neither read nor able to fault.
    unsafe { _mm256_maskload_ps(s.as_ptr(), first_lanes(s.len())) }
}

/// [`load_lanes`] for u32.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn load_lanes_u32(s: &[u32]) -> __m256i {
    if s.len() >= LANES {
        return load_u32(s);
    }
    // SAFETY: as in `load_lanes`.
    unsafe { _mm256_maskload_epi32(s.as_ptr().cast(), first_lanes(s.len())) }
}

/// Stores lanes `0..n` (n ≤ 8) of `v` at `dst[at..]`. Where `dst` has room, all 8
/// lanes are stored: callers write `dst` in increasing order, so the lanes past `n` land
/// where a later store writes again. (Masked stores are microcoded, and slow, on AMD.)
#[inline]
#[target_feature(enable = "avx2,fma")]
fn store_spill(dst: &mut [f32], at: usize, n: usize, v: __m256) {
    if at + LANES <= dst.len() {
        return store(&mut dst[at..], v);
    }
    let mut lanes = [0.0f32; LANES];
    store(&mut lanes, v);
    dst[at..at + n].copy_from_slice(&lanes[..n]);
}

/// [`store_spill`] for u32.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn store_spill_u32(dst: &mut [u32], at: usize, n: usize, v: __m256i) {
    if at + LANES <= dst.len() {
        return store_u32(&mut dst[at..], v);
    }
    let mut lanes = [0u32; LANES];
    store_u32(&mut lanes, v);
    dst[at..at + n].copy_from_slice(&lanes[..n]);
}

/// A plane index (which the public API checks fits u32) broadcast to 8 lanes; indices
/// of padding may wrap, as u32 arithmetic does.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn splat_index(i: usize) -> __m256i {
    _mm256_set1_epi32(i as u32 as i32)
}

/// PyTorch's running-max step: `v` replaces the best where it is greater or NaN.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn take_max(best: &mut __m256, at: &mut __m256i, v: __m256, v_at: __m256i) {
    let take = _mm256_or_ps(
        _mm256_cmp_ps::<_CMP_GT_OQ>(v, *best),
        _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v),
    );
    *best = _mm256_blendv_ps(*best, v, take);
    let at_bits = _mm256_blendv_ps(_mm256_castsi256_ps(*at), _mm256_castsi256_ps(v_at), take);
    *at = _mm256_castps_si256(at_bits);
}

/// Interleaves `even` and `odd` lanes into 16 values: `[e0, o0, e1, o1, …]`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn interleave(even: __m256, odd: __m256) -> (__m256, __m256) {
    // Unpack within 128-bit halves, then gather the halves.
    let (lo, hi) = (_mm256_unpacklo_ps(even, odd), _mm256_unpackhi_ps(even, odd));
    (
        _mm256_permute2f128_ps::<0x20>(lo, hi),
        _mm256_permute2f128_ps::<0x31>(lo, hi),
    )
}

/// Match counting: a counter per lane, from which `hits` (all-ones lanes) are
/// subtracted; cheaper than a popcount per compare (POPCNT is not part of this path's
/// target features, so `count_ones` would be emulated).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn count_hits(counts: __m256i, hits: __m256) -> __m256i {
    _mm256_sub_epi32(counts, _mm256_castps_si256(hits))
}

/// The sum of the 8 counters of `counts`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn total(counts: __m256i) -> usize {
    let half = _mm_add_epi32(
        _mm256_castsi256_si128(counts),
        _mm256_extracti128_si256::<1>(counts),
    );
    let pair = _mm_add_epi32(half, _mm_shuffle_epi32::<0b01_00_11_10>(half));
    let one = _mm_add_epi32(pair, _mm_shuffle_epi32::<0b10_11_00_01>(pair));
    _mm_cvtsi128_si32(one) as u32 as usize
}

/// The 64-bit lane pairs of a stride-2 shuffle come as outputs 0-1, 4-5, 2-3, 6-7:
/// puts them in order.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn unswap_pairs(v: __m256i) -> __m256i {
    _mm256_permute4x64_epi64::<0b11_01_10_00>(v)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn unswap_pairs_ps(v: __m256) -> __m256 {
    _mm256_castsi256_ps(unswap_pairs(_mm256_castps_si256(v)))
}

#[target_feature(enable = "avx2,fma")]
fn plane_sum_avx2(x: &[f32]) -> f32 {
    // Four independent chains hide the add latency.
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut blocks = x.chunks_exact(4 * LANES);
    for block in &mut blocks {
        for (a, part) in acc.iter_mut().zip(block.chunks_exact(LANES)) {
            *a = _mm256_add_ps(*a, load(part));
        }
    }
    let mut octets = blocks.remainder().chunks_exact(LANES);
    for part in &mut octets {
        acc[0] = _mm256_add_ps(acc[0], load(part));
    }
    let total = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let half = _mm_add_ps(
        _mm256_castps256_ps128(total),
        _mm256_extractf128_ps::<1>(total),
    );
    let pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
    let one = _mm_add_ss(pair, _mm_movehdup_ps(pair));
    _mm_cvtss_f32(one) + octets.remainder().iter().sum::<f32>()
}

#[target_feature(enable = "avx2,fma")]
fn pixel_sums_avx2(channels: usize, x: &[f32], y: &mut [f32]) {
    // Four channel blocks at a time: independent add chains, and 128 contiguous bytes
    // read per pixel.
    let wide_end = channels - channels % (4 * LANES);
    for c in (0..wide_end).step_by(4 * LANES) {
        let mut acc = [_mm256_setzero_ps(); 4];
        for pixel in x.chunks_exact(channels) {
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_add_ps(*a, load(&pixel[c + j * LANES..]));
            }
        }
        for (j, a) in acc.into_iter().enumerate() {
            store(&mut y[c + j * LANES..], a);
        }
    }
    let vec_end = channels - channels % LANES;
    for c in (wide_end..vec_end).step_by(LANES) {
        let mut acc = _mm256_setzero_ps();
        for pixel in x.chunks_exact(channels) {
            acc = _mm256_add_ps(acc, load(&pixel[c..]));
        }
        store(&mut y[c..], acc);
    }
    for (c, s) in y.iter_mut().enumerate().skip(vec_end) {
        *s = x
            .chunks_exact(channels)
            .fold(0.0, |sum, pixel| sum + pixel[c]);
    }
}
