//! The one error type every public kernel returns.
//!
//! Kernels check shapes, strides and slice lengths at their boundary and report
//! what they expected and what they were given, so that a caller can fix the call
//! without reading the kernel.

use std::fmt;

/// What went wrong in a kernel call. Every variant says what was expected and what came.
#[derive(Debug, Clone, PartialEq)]
pub enum KernelError {
    /// Two sizes that must agree do not (e.g. a bias length that is not the channel count).
    ShapeMismatch {
        what: &'static str,
        expected: String,
        got: String,
    },
    /// A slice is shorter than the shape and strides say it must be.
    BufferTooSmall {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    /// A descriptor field or hyper-parameter is out of its domain (zero stride, negative eps...).
    InvalidParameter { what: &'static str, reason: String },
    /// A size computation overflowed `usize`: the shape cannot describe real memory.
    SizeOverflow { what: &'static str },
    /// The ISA asked for (by `AXONAL_ISA` or the API) is unknown or cannot run on this CPU.
    UnsupportedIsa { requested: String, reason: String },
}

impl KernelError {
    /// Shorthand for [`KernelError::ShapeMismatch`].
    pub fn shape(what: &'static str, expected: impl fmt::Display, got: impl fmt::Display) -> Self {
        KernelError::ShapeMismatch {
            what,
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }

    /// Shorthand for [`KernelError::InvalidParameter`].
    pub fn invalid(what: &'static str, reason: impl fmt::Display) -> Self {
        KernelError::InvalidParameter {
            what,
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::ShapeMismatch {
                what,
                expected,
                got,
            } => write!(
                f,
                "shape mismatch in {what}: expected {expected}, got {got}"
            ),
            KernelError::BufferTooSmall { what, needed, got } => write!(
                f,
                "buffer too small for {what}: needs {needed} elements, got {got}"
            ),
            KernelError::InvalidParameter { what, reason } => {
                write!(f, "invalid parameter {what}: {reason}")
            }
            KernelError::SizeOverflow { what } => {
                write!(f, "size of {what} overflows the address space")
            }
            KernelError::UnsupportedIsa { requested, reason } => {
                write!(f, "unsupported ISA {requested:?}: {reason}")
            }
        }
    }
}

impl std::error::Error for KernelError {}

/// Result of a kernel call.
pub type Result<T> = std::result::Result<T, KernelError>;

/// Checks that `slice_len` holds at least `needed` elements.
pub(crate) fn check_len(what: &'static str, needed: usize, slice_len: usize) -> Result<()> {
    if slice_len < needed {
        return Err(KernelError::BufferTooSmall {
            what,
            needed,
            got: slice_len,
        });
    }
    Ok(())
}

/// Checks that `slice_len` is exactly `expected` (for dense tensors, where a longer
/// slice is as surely a bug as a shorter one).
pub(crate) fn check_exact(what: &'static str, expected: usize, slice_len: usize) -> Result<()> {
    if slice_len != expected {
        return Err(KernelError::shape(
            what,
            format!("{expected} elements"),
            format!("{slice_len} elements"),
        ));
    }
    Ok(())
}

/// Multiplies sizes, reporting overflow as [`KernelError::SizeOverflow`].
pub(crate) fn product(what: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or(KernelError::SizeOverflow { what })
}

/// Checks that a hyper-parameter is finite.
pub(crate) fn check_finite(what: &'static str, value: f32) -> Result<()> {
    if !value.is_finite() {
        return Err(KernelError::invalid(
            what,
            format!("must be finite, got {value}"),
        ));
    }
    Ok(())
}
