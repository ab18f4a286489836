//! Running a kernel written once, generic over [`Lanes`](super::lanes::Lanes), on the
//! lane type of an ISA path: the glue that the loss, dropout and optimizer kernels share
//! with the element-wise ones.

/// Defines `fn $name(isa: Isa, args…) -> ret` that calls `$kernel::<L>(args…)` with `L`
/// the lane type of `isa`: `f32` (scalar), `wide::f32x4` (neon) or the AVX2 register,
/// the latter inside a `#[target_feature(enable = "avx2,fma")]` function so that the
/// (`#[inline(always)]`) kernel compiles with those features. The caller has checked
/// that `isa` runs on this CPU; the AVX2 arm asserts it again before the unsafe call.
macro_rules! lanes_dispatch {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $kernel:ident
    ) => {
        $(#[$meta])*
        $vis fn $name(isa: $crate::arch::Isa, $($arg: $ty),*) $(-> $ret)? {
            match isa {
                #[cfg(target_arch = "x86_64")]
                $crate::arch::Isa::Avx2 => {
                    #[target_feature(enable = "avx2,fma")]
                    fn avx2($($arg: $ty),*) $(-> $ret)? {
                        $kernel::<$crate::eltwise::avx2::V8>($($arg),*)
                    }
                    assert!(
                        $crate::arch::Isa::Avx2.is_available(),
                        "the AVX2 path needs AVX2 and FMA"
                    );
                    // SAFETY: the CPU has AVX2 and FMA (asserted just above).
                    unsafe { avx2($($arg),*) }
                }
                $crate::arch::Isa::Neon => $kernel::<wide::f32x4>($($arg),*),
                // Scalar, and AVX2 off x86_64, which `check_available` refuses before this.
                _ => $kernel::<f32>($($arg),*),
            }
        }
    };
}

pub(crate) use lanes_dispatch;

/// `$f::<G…, true>(args…)` when `$flag` holds, else `$f::<G…, false>(args…)`: a run-time
/// flag turned into a const generic, so that each case compiles to a loop of its own
/// (a fused ReLU or not, whole vectors only or a partial last one).
macro_rules! with_const_bool {
    ($flag:expr, $f:ident($($arg:expr),* $(,)?)) => {
        if $flag {
            $f::<true>($($arg),*)
        } else {
            $f::<false>($($arg),*)
        }
    };
    ($flag:expr, $f:ident::<$($g:tt),*>($($arg:expr),* $(,)?)) => {
        if $flag {
            $f::<$($g,)* true>($($arg),*)
        } else {
            $f::<$($g,)* false>($($arg),*)
        }
    };
}

pub(crate) use with_const_bool;
