//! Reusable, 64-byte-aligned scratch buffers, one set per thread.
//!
//! After the first call of a given size a thread works in the same memory again, so
//! kernels allocate nothing in steady state.

use std::cell::RefCell;

/// A growable f32 buffer whose slices start on a 64-byte (cache-line) boundary.
#[derive(Default)]
pub(crate) struct AlignedBuffer {
    storage: Vec<f32>,
}

const ALIGN_FLOATS: usize = 64 / std::mem::size_of::<f32>();

impl AlignedBuffer {
    /// A 64-byte-aligned slice of `len` floats (contents unspecified).
    pub fn slice(&mut self, len: usize) -> &mut [f32] {
        let needed = len + ALIGN_FLOATS;
        if self.storage.len() < needed {
            self.storage = vec![0.0; needed];
        }
        let misalignment = (self.storage.as_ptr() as usize % 64) / std::mem::size_of::<f32>();
        let offset = (ALIGN_FLOATS - misalignment) % ALIGN_FLOATS;
        &mut self.storage[offset..offset + len]
    }
}

thread_local! {
    static PACK_A: RefCell<AlignedBuffer> = RefCell::default();
    static PACK_B: RefCell<AlignedBuffer> = RefCell::default();
    static COLUMNS: RefCell<AlignedBuffer> = RefCell::default();
    static WEIGHTS: RefCell<AlignedBuffer> = RefCell::default();
    static STAGING: RefCell<AlignedBuffer> = RefCell::default();
    static RELAYOUT: RefCell<AlignedBuffer> = RefCell::default();
}

/// Which per-thread buffer to use: buffers of different kinds are live at the same time
/// (a convolution's column buffer while GEMM packs its A and B blocks).
#[derive(Clone, Copy)]
pub(crate) enum Buffer {
    /// GEMM's packed A block.
    PackA,
    /// GEMM's packed B block.
    PackB,
    /// A convolution's im2col column matrix.
    Columns,
    /// Convolution weights in another order (NHWC kernels).
    Weights,
    /// A convolution's output or gradient regrouped for a batched GEMM.
    Staging,
    /// Images moved to another layout (NCHW to NHWC and back) for a kernel that reads one.
    Relayout,
}

/// Runs `f` with this thread's buffer of kind `which`, holding at least `len` floats.
///
/// If the buffer is already in use on this thread (a nested call, e.g. from a rayon task
/// stolen while waiting), `f` gets a fresh allocation instead of failing.
pub(crate) fn with_buffer<R>(which: Buffer, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let key = match which {
        Buffer::PackA => &PACK_A,
        Buffer::PackB => &PACK_B,
        Buffer::Columns => &COLUMNS,
        Buffer::Weights => &WEIGHTS,
        Buffer::Staging => &STAGING,
        Buffer::Relayout => &RELAYOUT,
    };
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => f(buffer.slice(len)),
        Err(_) => f(AlignedBuffer::default().slice(len)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_aligned_and_reused() {
        let mut buffer = AlignedBuffer::default();
        let first = buffer.slice(100).as_ptr() as usize;
        assert_eq!(first % 64, 0);
        let again = buffer.slice(50).as_ptr() as usize;
        assert_eq!(again, first, "a smaller request reuses the memory");
        assert_eq!(buffer.slice(1000).as_ptr() as usize % 64, 0);
    }

    #[test]
    fn nested_use_gets_its_own_memory() {
        with_buffer(Buffer::PackA, 8, |outer| {
            outer.fill(1.0);
            with_buffer(Buffer::PackA, 8, |inner| inner.fill(2.0));
            assert!(outer.iter().all(|&v| v == 1.0));
        });
    }
}

thread_local! {
    static SMALL_F32: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    static SMALL_F64: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` copies of `fill` in a vector taken from this thread's stack of
/// reused vectors (nested calls take different ones), so that the small per-call
/// tables of a kernel (bias patterns, partial sums) cost no allocation in steady state.
pub(crate) fn with_f32s<R>(len: usize, fill: f32, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut v = SMALL_F32.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    v.clear();
    v.resize(len, fill);
    let result = f(&mut v);
    SMALL_F32.with(|s| s.borrow_mut().push(v));
    result
}

/// [`with_f32s`] for f64 accumulators.
pub(crate) fn with_f64s<R>(len: usize, fill: f64, f: impl FnOnce(&mut [f64]) -> R) -> R {
    let mut v = SMALL_F64.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    v.clear();
    v.resize(len, fill);
    let result = f(&mut v);
    SMALL_F64.with(|s| s.borrow_mut().push(v));
    result
}
