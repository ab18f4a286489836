//! Which instruction-set path runs: detection once per process, and a way to force one.
//!
//! Three paths exist for every hot kernel:
//! - [`Isa::Scalar`]: plain Rust, the portable fallback and the easiest to read;
//! - [`Isa::Neon`]: a 4-lane path written on `wide::f32x4`, which is NEON on aarch64 and
//!   SSE on x86_64 (where it is therefore built and tested);
//! - [`Isa::Avx2`]: x86_64 AVX2 + FMA intrinsics.
//!
//! The process-wide choice is, in order: a path forced with [`Isa::force`], the
//! `AXONAL_ISA` environment variable (`scalar`, `neon` or `avx2`), or the best path the
//! CPU runs. An unknown name or a path this CPU cannot run is reported as
//! [`KernelError::UnsupportedIsa`] by [`Isa::selected`], never as a crash.

mod cache;
mod denormals;

pub use cache::CacheSizes;
pub use denormals::FlushDenormals;

use crate::error::{KernelError, Result};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// An instruction-set path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust, no explicit SIMD.
    Scalar,
    /// 4-lane `wide::f32x4`: NEON on aarch64, SSE on x86_64.
    Neon,
    /// AVX2 + FMA on x86_64.
    Avx2,
}

/// Name of the environment variable that forces a path for the whole process.
pub const ISA_ENV_VAR: &str = "AXONAL_ISA";

/// Every path, slowest first.
const ALL: [Isa; 3] = [Isa::Scalar, Isa::Neon, Isa::Avx2];

/// 0 = not forced; otherwise 1 + the index of the forced path in `ALL`.
static FORCED: AtomicU8 = AtomicU8::new(0);

impl Isa {
    /// The lower-case name used by `AXONAL_ISA` and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Neon => "neon",
            Isa::Avx2 => "avx2",
        }
    }

    /// f32 values in one vector of the path: 8 (AVX2), 4 (the `wide` path), 1 (scalar).
    pub fn f32_lanes(self) -> usize {
        match self {
            Isa::Avx2 => 8,
            Isa::Neon => 4,
            Isa::Scalar => 1,
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            // `wide` compiles to the target's baseline SIMD (SSE2 on x86_64, NEON on
            // aarch64) or to plain arrays elsewhere, so it runs on every CPU.
            Isa::Scalar | Isa::Neon => true,
            Isa::Avx2 => avx2_fma_detected(),
        }
    }

    /// Every path this CPU can run, slowest first.
    pub fn available() -> Vec<Isa> {
        ALL.into_iter().filter(|isa| isa.is_available()).collect()
    }

    /// The fastest path this CPU can run.
    pub fn detected() -> Isa {
        *Self::available()
            .last()
            .expect("the scalar path is always available")
    }

    /// The path kernels use in this process: the forced one, else `AXONAL_ISA`, else
    /// [`Isa::detected`].
    ///
    /// Fails when `AXONAL_ISA` names an unknown path or one this CPU cannot run.
    pub fn selected() -> Result<Isa> {
        match FORCED.load(Ordering::Relaxed) {
            0 => from_env().clone(),
            code => Ok(ALL[usize::from(code) - 1]),
        }
    }

    /// Forces `isa` for the whole process (`None` returns to `AXONAL_ISA` / detection).
    ///
    /// Fails, and changes nothing, when this CPU cannot run `isa`.
    pub fn force(isa: Option<Isa>) -> Result<()> {
        let code = match isa {
            None => 0,
            Some(isa) => {
                isa.check_available()?;
                let index = ALL.iter().position(|&i| i == isa).expect("in ALL");
                u8::try_from(index + 1).expect("three paths fit in u8")
            }
        };
        FORCED.store(code, Ordering::Relaxed);
        Ok(())
    }

    /// `Ok(self)` when this CPU runs the path, else [`KernelError::UnsupportedIsa`].
    pub fn check_available(self) -> Result<Isa> {
        if self.is_available() {
            Ok(self)
        } else {
            Err(KernelError::UnsupportedIsa {
                requested: self.name().to_string(),
                reason: format!(
                    "this CPU cannot run it; available: {}",
                    names(&Self::available())
                ),
            })
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Isa {
    type Err = KernelError;

    /// Parses `scalar`, `neon` or `avx2` (case-insensitive, surrounding spaces ignored).
    fn from_str(s: &str) -> Result<Isa> {
        let wanted = s.trim().to_ascii_lowercase();
        ALL.into_iter()
            .find(|isa| isa.name() == wanted)
            .ok_or_else(|| KernelError::UnsupportedIsa {
                requested: s.to_string(),
                reason: format!("unknown path; expected one of {}", names(&ALL)),
            })
    }
}

/// Comma-separated names, for messages.
fn names(isas: &[Isa]) -> String {
    isas.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
}

/// `AXONAL_ISA`, read and checked once per process.
fn from_env() -> &'static Result<Isa> {
    static FROM_ENV: OnceLock<Result<Isa>> = OnceLock::new();
    FROM_ENV.get_or_init(|| match std::env::var(ISA_ENV_VAR) {
        Err(std::env::VarError::NotPresent) => Ok(Isa::detected()),
        Err(std::env::VarError::NotUnicode(raw)) => Err(KernelError::UnsupportedIsa {
            requested: raw.to_string_lossy().into_owned(),
            reason: format!("{ISA_ENV_VAR} is not valid UTF-8"),
        }),
        Ok(value) if value.trim().is_empty() => Ok(Isa::detected()),
        Ok(value) => value
            .parse::<Isa>()
            .and_then(Isa::check_available)
            .map_err(|e| match e {
                KernelError::UnsupportedIsa { requested, reason } => KernelError::UnsupportedIsa {
                    requested,
                    reason: format!("from {ISA_ENV_VAR}: {reason}"),
                },
                other => other,
            }),
    })
}

#[cfg(target_arch = "x86_64")]
fn avx2_fma_detected() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_fma_detected() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isa in ALL {
            assert_eq!(isa.name().parse::<Isa>().unwrap(), isa);
        }
        assert_eq!(" AVX2 ".parse::<Isa>().unwrap(), Isa::Avx2);
    }

    #[test]
    fn unknown_name_is_a_clear_error() {
        let err = "avx512".parse::<Isa>().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("avx512") && msg.contains("scalar, neon, avx2"),
            "{msg}"
        );
    }

    #[test]
    fn scalar_and_neon_always_run() {
        let available = Isa::available();
        assert!(available.contains(&Isa::Scalar));
        assert!(available.contains(&Isa::Neon));
        assert_eq!(Isa::detected(), *available.last().unwrap());
    }

    #[test]
    fn forcing_an_unavailable_path_fails_and_changes_nothing() {
        if Isa::Avx2.is_available() {
            return; // nothing to check on a CPU that runs every path
        }
        let before = Isa::selected();
        assert!(matches!(
            Isa::force(Some(Isa::Avx2)),
            Err(KernelError::UnsupportedIsa { .. })
        ));
        assert_eq!(Isa::selected(), before);
    }
}
