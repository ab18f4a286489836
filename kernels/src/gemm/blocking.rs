//! Cache blocking: how large the KC, MC and NC blocks are, derived from the caches.
//!
//! Following BLIS: a `kc × nr` B micro-panel plus a `kc × mr` A micro-panel stay in L1
//! while the microkernel streams them; an `mc × kc` A block stays in L2 while every B
//! micro-panel of the `kc × nc` B block (kept in L3) passes by it.

use crate::arch::CacheSizes;

/// Block sizes of one GEMM call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blocking {
    pub kc: usize,
    pub mc: usize,
    pub nc: usize,
}

impl Blocking {
    /// Blocks for a microkernel of `mr × nr` on a CPU with `caches`.
    ///
    /// Tuned on Zen 4 (32 KiB L1d, 1 MiB L2) with `axonal bench gemm`: kc = 256 and
    /// mc ≈ 240 ran 2048³ at ≈ 89% of the FMA peak; kc = 368 (L1 full) lost 30% to L1
    /// misses, and mc = 480 (half of L2) lost 10–20% on 512³.
    pub fn for_tile(mr: usize, nr: usize, caches: CacheSizes) -> Blocking {
        const F32: usize = std::mem::size_of::<f32>();
        // L1 holds the B micro-panel that the inner loop reuses, plus two A micro-panels
        // (the one being read and the next), rounded down to a multiple of 64.
        let kc = (caches.l1d_or_default() / ((nr + 2 * mr) * F32)).clamp(64, 512) / 64 * 64;
        // A quarter of L2 for the A block: the rest holds C tiles and B panels passing by.
        let mc = (caches.l2_or_default() / 4 / (kc * F32)).clamp(mr, 1024) / mr * mr;
        // A quarter of the shared L3 for the B block, at most 4080 columns (BLIS's choice).
        let nc = (caches.l3_or_default() / 4 / (kc * F32)).clamp(nr, 4080) / nr * nr;
        Blocking { kc, mc, nc }
    }

    /// The same number of blocks over an `m × n × k` problem, but of equal sizes (whole
    /// tiles), so that no block is a thin remainder: k = 288 runs as 2 × 144 rather
    /// than 256 + 32, which would store and reload every C tile for 32 steps.
    pub fn balanced(self, (m, mr): (usize, usize), (n, nr): (usize, usize), k: usize) -> Self {
        let even = |len: usize, block: usize, unit: usize| {
            let blocks = len.div_ceil(block).max(1);
            len.div_ceil(blocks).div_ceil(unit).max(1) * unit
        };
        Blocking {
            kc: even(k, self.kc, 4),
            mc: even(m, self.mc, mr),
            nc: even(n, self.nc, nr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zen_caches_give_blis_like_blocks() {
        let zen3 = CacheSizes {
            l1d: Some(32 << 10),
            l2: Some(512 << 10),
            l3: Some(32 << 20),
        };
        let b = Blocking::for_tile(6, 16, zen3);
        assert_eq!((b.kc, b.mc, b.nc), (256, 126, 4080));
        assert!(b.mc.is_multiple_of(6) && b.nc.is_multiple_of(16));
        let zen4 = CacheSizes {
            l2: Some(1 << 20),
            ..zen3
        };
        assert_eq!(Blocking::for_tile(6, 16, zen4).mc, 252);
    }

    #[test]
    fn balanced_blocks_split_evenly_in_whole_tiles() {
        let b = Blocking {
            kc: 256,
            mc: 252,
            nc: 4080,
        };
        let even = b.balanced((300, 6), (100, 16), 288);
        assert_eq!((even.kc, even.mc, even.nc), (144, 150, 112));
        let small = b.balanced((1, 6), (1, 16), 1);
        assert_eq!((small.kc, small.mc, small.nc), (4, 6, 16));
        // Never more blocks than before.
        let big = b.balanced((1000, 6), (9000, 16), 1000);
        assert_eq!(
            (
                1000usize.div_ceil(big.mc),
                9000usize.div_ceil(big.nc),
                1000usize.div_ceil(big.kc)
            ),
            (4, 3, 4)
        );
    }

    #[test]
    fn unknown_caches_still_give_whole_tiles() {
        let none = CacheSizes {
            l1d: None,
            l2: None,
            l3: None,
        };
        let b = Blocking::for_tile(8, 8, none);
        assert!(b.kc >= 64 && b.mc > 0 && b.nc > 0);
        assert!(b.mc.is_multiple_of(8) && b.nc.is_multiple_of(8));
    }
}
