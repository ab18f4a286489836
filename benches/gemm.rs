//! SGEMM: axonal against matrixmultiply, side by side, on square and CNN shapes.
//!
//! `cargo bench --bench gemm`; criterion's reports land in target/criterion. For a quick
//! table with fractions of the FMA peak use `axonal bench gemm` instead.

use axonal::kernels::gemm::{sgemm, Epilogue, GemmDesc};
use axonal::kernels::Parallelism;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

/// (M, N, K): squares, then conv forward shapes of the seed CNN and a ResNet layer.
const SHAPES: [(usize, usize, usize); 7] = [
    (128, 128, 128),
    (512, 512, 512),
    (1024, 1024, 1024),
    (32, 43264, 9),
    (64, 7744, 288),
    (64, 576, 576),
    (128, 3136, 1152),
];

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm");
    group.sample_size(20);
    for (m, n, k) in SHAPES {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.01).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 * 0.01).collect();
        let mut out = vec![0.0f32; m * n];
        let desc = GemmDesc::row_major(m, n, k);
        let id = format!("{m}x{n}x{k}");
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(BenchmarkId::new("axonal", &id), |bench| {
            bench.iter(|| {
                sgemm(
                    &desc,
                    &a,
                    &b,
                    &mut out,
                    &Epilogue::default(),
                    Parallelism::Sequential,
                )
                .expect("valid shapes");
                black_box(&out);
            })
        });
        group.bench_function(BenchmarkId::new("matrixmultiply", &id), |bench| {
            bench.iter(|| {
                // SAFETY: dense row-major buffers of the sizes given, C distinct from A and B.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        k as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        out.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                };
                black_box(&out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, gemm);
criterion_main!(benches);
