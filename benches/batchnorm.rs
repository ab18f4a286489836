//! Batch-norm training forward and backward on the CNN shapes of `axonal bench
//! batchnorm`, one thread.
//!
//! `cargo bench --bench batchnorm`; criterion reports GB/s moved (forward: x and y;
//! backward: x, dy and dx). For a table with fractions of the measured memory bandwidth
//! and the PyTorch comparison use `axonal bench batchnorm`.

use axonal::kernels::norm::{batch_norm_backward, batch_norm_forward_training, BatchNormDesc};
use axonal::kernels::{Layout, Parallelism};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

fn cases() -> Vec<(&'static str, BatchNormDesc)> {
    let nhwc = Layout::Nhwc;
    vec![
        ("64x64x13x13_nchw", BatchNormDesc::new(64, 64, 169)),
        (
            "64x64x13x13_nhwc",
            BatchNormDesc::new(64, 64, 169).layout(nhwc),
        ),
        ("64x32x26x26_nchw", BatchNormDesc::new(64, 32, 676)),
        (
            "64x32x26x26_nhwc",
            BatchNormDesc::new(64, 32, 676).layout(nhwc),
        ),
        ("64x64x11x11_nchw", BatchNormDesc::new(64, 64, 121)),
        (
            "64x64x11x11_nhwc",
            BatchNormDesc::new(64, 64, 121).layout(nhwc),
        ),
    ]
}

fn batchnorm(c: &mut Criterion) {
    let mut group = c.benchmark_group("batchnorm");
    group.sample_size(30);
    let seq = Parallelism::Sequential;
    for (name, desc) in cases() {
        let (len, ch) = (desc.len(), desc.channels);
        let x: Vec<f32> = (0..len)
            .map(|i| ((i * 7919 % 1009) as f32 - 504.0) * 1e-3)
            .collect();
        let dy: Vec<f32> = (0..len).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect();
        let (gamma, beta) = (vec![1.0f32; ch], vec![0.0f32; ch]);
        let (mut rm, mut rv) = (vec![0.0f32; ch], vec![1.0f32; ch]);
        let (mut mean, mut inv_std) = (vec![0.0f32; ch], vec![0.0f32; ch]);
        let (mut y, mut dx) = (vec![0.0f32; len], vec![0.0f32; len]);
        let (mut dgamma, mut dbeta) = (vec![0.0f32; ch], vec![0.0f32; ch]);
        group.throughput(Throughput::Bytes((8 * len) as u64));
        group.bench_function(BenchmarkId::new("forward_training", name), |b| {
            b.iter(|| {
                batch_norm_forward_training(
                    &desc,
                    &x,
                    &gamma,
                    &beta,
                    0.1,
                    &mut rm,
                    &mut rv,
                    &mut y,
                    &mut mean,
                    &mut inv_std,
                    seq,
                )
                .expect("valid shapes");
                black_box(&y);
            })
        });
        group.throughput(Throughput::Bytes((12 * len) as u64));
        group.bench_function(BenchmarkId::new("backward", name), |b| {
            b.iter(|| {
                batch_norm_backward(
                    &desc,
                    &x,
                    &dy,
                    &gamma,
                    &mean,
                    &inv_std,
                    &mut dx,
                    &mut dgamma,
                    &mut dbeta,
                    seq,
                )
                .expect("valid shapes");
                black_box(&dx);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, batchnorm);
criterion_main!(benches);
