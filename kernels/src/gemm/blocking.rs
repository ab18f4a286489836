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
    pub fn for_tile(mr: usize, nr: usize, caches: CacheSizes) -> Blocking {
        const F32: usize = std::mem::size_of::<f32>();
        // Half of L1 for the two micro-panels; the rest for C and stray lines.
        let kc = (caches.l1d_or_default() / 2 / ((mr + nr) * F32)).clamp(64, 512);
        let kc = kc / 8 * 8;
        // Half of L2 for the A block.
        let mc = (caches.l2_or_default() / 2 / (kc * F32)).clamp(mr, 1024);
        let mc = mc / mr * mr;
        // Half of the shared L3 for the B block, at most 4096 columns.
        let nc = (caches.l3_or_default() / 2 / (kc * F32)).clamp(nr, 4096);
        let nc = nc / nr * nr;
        if let Ok(v) = std::env::var("AXONAL_TUNE") {
            let v: Vec<usize> = v.split(',').map(|x| x.parse().unwrap()).collect();
            return Blocking { kc: v[0], mc: v[1], nc: v[2] };
        }
        Blocking { kc, mc, nc }
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
        assert_eq!(b.kc, 368);
        assert!(b.mc.is_multiple_of(6) && b.nc.is_multiple_of(16));
        assert!(b.mc * b.kc * 4 <= 256 << 10);
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
