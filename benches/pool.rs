//! Pooling forward and backward on the CNN shapes of `axonal bench pool`, one thread.
//!
//! `cargo bench --bench pool`; criterion reports GB/s moved. For a table with fractions
//! of the measured memory bandwidth and the PyTorch comparison use `axonal bench pool`.

use axonal::kernels::pool::{
    avg_pool2d_backward, avg_pool2d_forward, global_avg_pool2d_backward, global_avg_pool2d_forward,
    max_pool2d_backward, max_pool2d_forward, Pool2dDesc,
};
use axonal::kernels::{Layout, Parallelism};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

#[derive(Clone, Copy)]
enum Kind {
    Max,
    Avg,
    Global,
}

fn cases() -> Vec<(&'static str, Kind, Pool2dDesc)> {
    let max_26 = Pool2dDesc::new(64, 32, [26, 26], [2, 2]);
    let avg_32 = Pool2dDesc::new(32, 64, [32, 32], [3, 3])
        .stride([2, 2])
        .padding([1, 1]);
    let global = Pool2dDesc::global(32, 128, [8, 8]);
    vec![
        ("max2x2_64x32x26x26_nchw", Kind::Max, max_26),
        (
            "max2x2_64x32x26x26_nhwc",
            Kind::Max,
            max_26.layout(Layout::Nhwc),
        ),
        (
            "max2x2_64x64x11x11_nchw",
            Kind::Max,
            Pool2dDesc::new(64, 64, [11, 11], [2, 2]),
        ),
        ("avg3x3s2p1_32x64x32x32_nchw", Kind::Avg, avg_32),
        ("global_32x128x8x8_nchw", Kind::Global, global),
    ]
}

fn pool(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool");
    group.sample_size(30);
    let seq = Parallelism::Sequential;
    for (name, kind, desc) in cases() {
        let (xd, yd) = (desc.input_dims(), desc.output_dims().expect("valid shape"));
        let x: Vec<f32> = (0..xd.len())
            .map(|i| ((i * 7919 % 1009) as f32) * 1e-3)
            .collect();
        let dy: Vec<f32> = (0..yd.len()).map(|i| (i % 13) as f32 * 0.1).collect();
        let (mut y, mut dx) = (vec![0.0f32; yd.len()], vec![0.0f32; xd.len()]);
        let mut argmax = vec![0u32; yd.len()];
        let bytes = |outputs: usize| (4 * (xd.len() + outputs * yd.len())) as u64;
        // Max pooling also moves a u32 argmax per output.
        let outputs = if matches!(kind, Kind::Max) { 2 } else { 1 };
        group.throughput(Throughput::Bytes(bytes(outputs)));
        group.bench_function(BenchmarkId::new("forward", name), |b| {
            b.iter(|| {
                match kind {
                    Kind::Max => max_pool2d_forward(&desc, &x, &mut y, &mut argmax, seq),
                    Kind::Avg => avg_pool2d_forward(&desc, true, &x, &mut y, seq),
                    Kind::Global => global_avg_pool2d_forward(&desc, &x, &mut y, seq),
                }
                .expect("valid shapes");
                black_box(&y);
            })
        });
        if matches!(kind, Kind::Max) {
            max_pool2d_forward(&desc, &x, &mut y, &mut argmax, seq).expect("valid shapes");
        }
        group.bench_function(BenchmarkId::new("backward", name), |b| {
            b.iter(|| {
                match kind {
                    Kind::Max => max_pool2d_backward(&desc, &dy, &argmax, &mut dx, seq),
                    Kind::Avg => avg_pool2d_backward(&desc, true, &dy, &mut dx, seq),
                    Kind::Global => global_avg_pool2d_backward(&desc, &dy, &mut dx, seq),
                }
                .expect("valid shapes");
                black_box(&dx);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pool);
criterion_main!(benches);
