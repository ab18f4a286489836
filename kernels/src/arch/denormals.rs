//! Flush-to-zero while a kernel runs.
//!
//! Products of tiny trained weights and activations fall into the denormal range, where
//! many x86 cores take a microcode assist per operation and run 20–50× slower (on the
//! Zen 4 development machine a 512³ SGEMM whose products are all denormal ran at the
//! same speed with and without the flush: AMD handles them in hardware). Kernels set
//! flush-to-zero (FTZ) and denormals-are-zero (DAZ) for the duration of their work and
//! restore the caller's floating-point control word afterwards, as ruy and oneDNN do, so
//! the caller's own arithmetic is never affected. Denormal inputs then read as zero and
//! denormal results are written as zero.

/// Sets FTZ and DAZ on the current thread until dropped, then restores the previous
/// control word. A no-op off x86_64.
pub struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

/// MXCSR bits: flush-to-zero (15) and denormals-are-zero (6).
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

impl FlushDenormals {
    /// Starts flushing denormals on this thread.
    #[allow(clippy::new_without_default)] // acquiring a guard is an action, not a default value
    pub fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = read_mxcsr();
            write_mxcsr(saved | FTZ_DAZ);
            FlushDenormals { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FlushDenormals {}
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        write_mxcsr(self.saved);
    }
}

#[cfg(target_arch = "x86_64")]
fn read_mxcsr() -> u32 {
    let mut value = 0u32;
    // SAFETY: stmxcsr stores the 32-bit control word into `value`, a valid, writable u32.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack, preserves_flags));
    }
    value
}

#[cfg(target_arch = "x86_64")]
fn write_mxcsr(value: u32) {
    // SAFETY: ldmxcsr loads a control word read by `read_mxcsr` with only the FTZ and DAZ
    // bits changed, both valid on every x86_64 CPU (reserved bits are left as they were).
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, readonly, preserves_flags));
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn flushes_while_held_and_restores_after() {
        let before = read_mxcsr();
        let tiny = std::hint::black_box(1e-39f32);
        assert!(tiny * std::hint::black_box(0.5) > 0.0);
        {
            let _guard = FlushDenormals::new();
            assert_eq!(read_mxcsr() & FTZ_DAZ, FTZ_DAZ);
            assert_eq!(std::hint::black_box(tiny) * std::hint::black_box(0.5), 0.0);
        }
        // The control bits are back; the low six bits are sticky exception flags that
        // the arithmetic above may have raised.
        assert_eq!(read_mxcsr() & !0x3f, before & !0x3f);
        assert!(std::hint::black_box(tiny) * std::hint::black_box(0.5) > 0.0);
    }
}
