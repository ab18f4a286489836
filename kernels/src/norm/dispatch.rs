//! One generic job, three ISA paths: the batch-norm kernels are written once over
//! [`Lanes`] and instantiated here with `f32` (scalar), `wide::f32x4` (neon) or the AVX2
//! register, at the granularity of one work item (a channel or a block of rows).

use crate::arch::Isa;
use crate::eltwise::lanes::Lanes;

/// A piece of work generic over the lane type. `run` must be `#[inline(always)]`, as
/// must everything it calls in its loops, so that the AVX2 instantiation compiles inside
/// the `target_feature` trampoline below rather than as out-of-line calls.
pub(super) trait LaneJob {
    type Output;
    fn run<L: Lanes>(self) -> Self::Output;
}

/// Runs `job` on `isa`'s lanes. The public entry points have checked that this CPU runs
/// `isa`; AVX2 is checked again here because the trampoline's soundness depends on it.
pub(super) fn run_on<J: LaneJob>(isa: Isa, job: J) -> J::Output {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if Isa::Avx2.is_available() => {
            // SAFETY: the CPU has AVX2 and FMA (this arm's guard).
            unsafe { run_avx2(job) }
        }
        Isa::Neon => job.run::<wide::f32x4>(),
        _ => job.run::<f32>(),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2<J: LaneJob>(job: J) -> J::Output {
    job.run::<crate::eltwise::V8>()
}
