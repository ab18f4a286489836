//! How many threads a kernel may use, and the thread pools that run them.
//!
//! Kernels split their work into independent items (tiles of the output, never parts
//! of a reduction), so the result is bitwise the same for every thread count.

use crate::error::{KernelError, Result};
use rayon::prelude::*;
use std::sync::{Arc, Mutex, OnceLock};

/// Threads a kernel call may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Parallelism {
    /// The calling thread only.
    #[default]
    Sequential,
    /// A pool of this many threads (one pool per count, built on first use and kept).
    Threads(usize),
}

impl Parallelism {
    /// All hardware threads the OS grants this process.
    pub fn all() -> Self {
        Parallelism::Threads(crate::probe::available_threads())
    }

    /// Rejects `Threads(0)`.
    pub fn validate(&self) -> Result<()> {
        match self {
            Parallelism::Threads(0) => Err(KernelError::invalid(
                "parallelism",
                "Threads(0): at least one thread is needed",
            )),
            _ => Ok(()),
        }
    }

    /// Number of threads that will run (1 for sequential).
    pub fn threads(&self) -> usize {
        match *self {
            Parallelism::Sequential => 1,
            Parallelism::Threads(n) => n.max(1),
        }
    }
}

/// Runs `f` on one of the threads of `par`'s pool (on the calling thread when
/// sequential). Kernels called inside then split their work in that pool without
/// handing it over, and the calling thread is one of the `n` workers: with a pool of n
/// threads beside a busy caller, n + 1 threads would compete for n cores between
/// kernels (rayon's idle workers spin before they sleep). A training step wraps its
/// passes in this.
pub fn install<R: Send>(par: Parallelism, f: impl FnOnce() -> R + Send) -> R {
    match par.threads() {
        1 => f(),
        n => pool(n).install(f),
    }
}

/// Runs `f(i)` for every `i < count`, spread over the threads of `par`.
///
/// A single item runs on the calling thread (as in the helpers below): waking the pool
/// for one piece of work costs more than tiny kernels (a loss over 64 rows, the
/// update of a 10-value bias) take.
pub(crate) fn for_each_index(par: Parallelism, count: usize, f: impl Fn(usize) + Sync + Send) {
    match par.threads() {
        _ if count <= 1 => (0..count).for_each(f),
        1 => (0..count).for_each(f),
        n => pool(n).install(|| (0..count).into_par_iter().for_each(f)),
    }
}

/// Runs `f(i, chunk)` for the consecutive `chunk_len`-sized chunks of `data` (the last
/// may be shorter), spread over the threads of `par`.
pub(crate) fn for_each_chunk_mut<T: Send>(
    par: Parallelism,
    data: &mut [T],
    chunk_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    let chunk_len = chunk_len.max(1);
    match par.threads() {
        n if n == 1 || data.len() <= chunk_len => data
            .chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| f(i, c)),
        n => pool(n).install(|| {
            data.par_chunks_mut(chunk_len)
                .enumerate()
                .for_each(|(i, c)| f(i, c))
        }),
    }
}

/// Items a threaded call keeps on the stack; calls with more collect them into a `Vec`.
const STACK_ITEMS: usize = 64;

/// Runs `f(i, item)` for every item of `items` (work the caller has already cut into
/// pieces, e.g. matching chunks of several slices), spread over the threads of `par`.
/// One thread walks the iterator as it is; several take up to 64 items into a table on
/// the stack (more into a `Vec`), so that the common calls allocate nothing either way.
pub(crate) fn for_each_item<T: Send>(
    par: Parallelism,
    items: impl Iterator<Item = T>,
    f: impl Fn(usize, T) + Sync + Send,
) {
    match par.threads() {
        1 => items.enumerate().for_each(|(i, t)| f(i, t)),
        n => {
            let mut items = items.peekable();
            let Some(first) = items.next() else {
                return;
            };
            if items.peek().is_none() {
                return f(0, first);
            }
            let mut table: [Option<T>; STACK_ITEMS] = std::array::from_fn(|_| None);
            table[0] = Some(first);
            let mut count = 1;
            while count < STACK_ITEMS {
                match items.next() {
                    Some(item) => {
                        table[count] = Some(item);
                        count += 1;
                    }
                    None => break,
                }
            }
            if items.peek().is_none() {
                let run = |(i, slot): (usize, &mut Option<T>)| {
                    if let Some(item) = slot.take() {
                        f(i, item);
                    }
                };
                pool(n).install(|| table[..count].par_iter_mut().enumerate().for_each(run));
                return;
            }
            let all: Vec<T> = table.into_iter().flatten().chain(items).collect();
            pool(n).install(|| all.into_par_iter().enumerate().for_each(|(i, t)| f(i, t)))
        }
    }
}

/// The pool of `threads` threads, built once.
fn pool(threads: usize) -> Arc<rayon::ThreadPool> {
    static POOLS: OnceLock<Mutex<Vec<Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(Mutex::default);
    let mut pools = pools
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = pools.iter().find(|p| p.current_num_threads() == threads) {
        return Arc::clone(found);
    }
    let built = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("axonal-{threads}t-{i}"))
            .build()
            .expect("the OS refused to start a kernel thread pool"),
    );
    pools.push(Arc::clone(&built));
    built
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_index_runs_once_for_any_thread_count() {
        for par in [
            Parallelism::Sequential,
            Parallelism::Threads(1),
            Parallelism::Threads(3),
        ] {
            let hits: Vec<AtomicUsize> = (0..50).map(|_| AtomicUsize::new(0)).collect();
            for_each_index(par, hits.len(), |i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "{par:?}"
            );
            let mut data = vec![0usize; 23];
            for_each_chunk_mut(par, &mut data, 5, |i, chunk| chunk.fill(i));
            assert_eq!(data[22], 4);
        }
    }

    #[test]
    fn zero_threads_is_an_error() {
        assert!(Parallelism::Threads(0).validate().is_err());
        assert!(Parallelism::Threads(2).validate().is_ok());
    }
}
