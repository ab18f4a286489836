//! 4-lane microkernel on `wide::f32x4`, 8 × 8 tile: 16 accumulators (8 rows × 2 halves
//! of 4). On aarch64 this is NEON with 32 vector registers, room for the accumulators,
//! the B row and the A values; on x86_64 it compiles to SSE, where it is tested.

use super::{check_lengths, MicroKernel};
use wide::f32x4;

pub(crate) const KERNEL: MicroKernel = MicroKernel {
    mr: MR,
    nr: NR,
    compute,
    sweep_into: None,
};

const MR: usize = 8;
const NR: usize = 8;

fn compute(k: usize, a: &[f32], b: &[f32], tile: &mut [f32]) {
    check_lengths(k, MR, NR, a, b, tile);
    // acc[i][h]: row i of the tile, columns 4h..4h+4.
    let mut acc = [[f32x4::ZERO; 2]; MR];
    for (a_step, b_step) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(k) {
        let b0 = f32x4::new([b_step[0], b_step[1], b_step[2], b_step[3]]);
        let b1 = f32x4::new([b_step[4], b_step[5], b_step[6], b_step[7]]);
        for (row, &a_value) in acc.iter_mut().zip(a_step) {
            let a_splat = f32x4::splat(a_value);
            row[0] = a_splat.mul_add(b0, row[0]);
            row[1] = a_splat.mul_add(b1, row[1]);
        }
    }
    for (out, row) in tile.chunks_exact_mut(NR).zip(acc) {
        out[..4].copy_from_slice(&row[0].to_array());
        out[4..].copy_from_slice(&row[1].to_array());
    }
}
