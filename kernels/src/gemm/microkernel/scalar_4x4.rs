//! Portable microkernel, 4 × 4 tile: 16 scalar accumulators that the compiler keeps in
//! registers on any target.

use super::{check_lengths, MicroKernel};

pub(crate) const KERNEL: MicroKernel = MicroKernel {
    mr: MR,
    nr: NR,
    compute,
    sweep_into: None,
};

const MR: usize = 4;
const NR: usize = 4;

fn compute(k: usize, a: &[f32], b: &[f32], tile: &mut [f32]) {
    check_lengths(k, MR, NR, a, b, tile);
    let mut acc = [[0.0f32; NR]; MR];
    for (a_step, b_step) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(k) {
        for (row, &a_value) in acc.iter_mut().zip(a_step) {
            for (c, &b_value) in row.iter_mut().zip(b_step) {
                // Not `mul_add`: without FMA in the target that is a slow library call.
                *c += a_value * b_value;
            }
        }
    }
    for (out, row) in tile.chunks_exact_mut(NR).zip(acc) {
        out.copy_from_slice(&row);
    }
}
