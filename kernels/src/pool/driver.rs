//! Splitting a pooling call into units (NCHW planes, NHWC rows) and the units among
//! threads.
//!
//! A unit owns a contiguous chunk of each output slice and computes it alone, in an order
//! that does not depend on which thread runs it or with which other units: results are
//! bitwise identical for every thread count.

use crate::parallel::{for_each_item, Parallelism};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Below about this many elements touched per task (≈ 10 µs of memory traffic), waking
/// a pool costs more than the work it spreads.
const MIN_TASK_ELEMENTS: usize = 1 << 15;

/// Tasks per thread: a few, so that a thread slowed by a neighbour hands work over.
const TASKS_PER_THREAD: usize = 4;

/// One output slice cut into per-unit chunks of `per_unit` elements (0: no such output).
pub(crate) struct Chunks<'a, T> {
    pub data: &'a mut [T],
    pub per_unit: usize,
}

impl<'a, T> Chunks<'a, T> {
    pub fn new(data: &'a mut [T], per_unit: usize) -> Self {
        Chunks { data, per_unit }
    }

    /// No output of this kind.
    pub fn none() -> Self {
        Chunks {
            data: &mut [],
            per_unit: 0,
        }
    }

    /// The chunks of the next `units` units, and the rest.
    fn split(self, units: usize) -> (Self, Self) {
        let (head, tail) = self.data.split_at_mut(units * self.per_unit);
        let per_unit = self.per_unit;
        (
            Chunks {
                data: head,
                per_unit,
            },
            Chunks {
                data: tail,
                per_unit,
            },
        )
    }

    /// The chunk of unit `i` of this slice.
    fn unit(&mut self, i: usize) -> &mut [T] {
        &mut self.data[i * self.per_unit..(i + 1) * self.per_unit]
    }
}

/// Runs `f(u, a_chunk, b_chunk)` for every unit `u < units` and returns the sum of its
/// results. `a` and `b` hold exactly `units` chunks each; `elements_per_unit` (elements
/// read and written by one unit) decides how many threads are worth waking.
pub(crate) fn for_each_unit<A: Send, B: Send>(
    par: Parallelism,
    units: usize,
    elements_per_unit: usize,
    a: Chunks<'_, A>,
    b: Chunks<'_, B>,
    f: impl Fn(usize, &mut [A], &mut [B]) -> usize + Sync,
) -> usize {
    let by_size = units.saturating_mul(elements_per_unit) / MIN_TASK_ELEMENTS;
    let tasks = units
        .min(by_size)
        .min(par.threads().saturating_mul(TASKS_PER_THREAD));
    if tasks <= 1 || par.threads() == 1 {
        return run_units(0, units, a, b, &f);
    }
    let per_task = units.div_ceil(tasks);
    let (mut a, mut b) = (a, b);
    let parts = (0..units).step_by(per_task).map(|first| {
        let count = per_task.min(units - first);
        let (a_part, a_rest) = std::mem::replace(&mut a, Chunks::none()).split(count);
        let (b_part, b_rest) = std::mem::replace(&mut b, Chunks::none()).split(count);
        (a, b) = (a_rest, b_rest);
        (first, count, a_part, b_part)
    });
    let total = AtomicUsize::new(0);
    for_each_item(par, parts, |_, (first, count, a, b)| {
        total.fetch_add(run_units(first, count, a, b, &f), Ordering::Relaxed);
    });
    total.into_inner()
}

/// Units `first .. first + count` on the calling thread, in order.
fn run_units<A, B>(
    first: usize,
    count: usize,
    mut a: Chunks<'_, A>,
    mut b: Chunks<'_, B>,
    f: &impl Fn(usize, &mut [A], &mut [B]) -> usize,
) -> usize {
    (0..count).map(|i| f(first + i, a.unit(i), b.unit(i))).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_gets_its_own_chunks_for_any_thread_count() {
        for par in [
            Parallelism::Sequential,
            Parallelism::Threads(2),
            Parallelism::Threads(5),
        ] {
            for units in [0, 1, 7, 100] {
                let mut a = vec![0usize; units * 3];
                let mut b = vec![0u8; units];
                let total = for_each_unit(
                    par,
                    units,
                    MIN_TASK_ELEMENTS, // worth a task each
                    Chunks::new(&mut a, 3),
                    Chunks::new(&mut b, 1),
                    |u, a, b| {
                        a.fill(u);
                        b[0] += 1;
                        u
                    },
                );
                assert_eq!(total, (0..units).sum::<usize>(), "{par:?}");
                assert!(a.chunks(3).enumerate().all(|(u, c)| c == [u, u, u]));
                assert!(b.iter().all(|&n| n == 1));
                let none = for_each_unit(
                    par,
                    units,
                    MIN_TASK_ELEMENTS,
                    Chunks::<f32>::none(),
                    Chunks::<u32>::none(),
                    |_, a, b| a.len() + b.len(),
                );
                assert_eq!(none, 0);
            }
        }
    }
}
