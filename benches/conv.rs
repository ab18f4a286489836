//! conv2d forward, backward-data and backward-weights on the seed CNN's layers and a
//! ResNet layer, batch as in training.
//!
//! `cargo bench --bench conv`; for a table with GFLOP/s and PyTorch's times use
//! `axonal bench conv`.

use axonal::kernels::conv::{
    conv2d_backward_data, conv2d_backward_weights, conv2d_forward, Conv2dDesc, ConvEpilogue,
};
use axonal::kernels::eltwise::Activation;
use axonal::kernels::Parallelism;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

fn layers() -> [(&'static str, Conv2dDesc); 4] {
    [
        ("conv1", Conv2dDesc::new(64, 1, [28, 28], 32, [3, 3])),
        ("conv2", Conv2dDesc::new(64, 32, [13, 13], 64, [3, 3])),
        ("conv3", Conv2dDesc::new(64, 64, [5, 5], 64, [3, 3])),
        (
            "res64",
            Conv2dDesc::new(32, 64, [32, 32], 64, [3, 3]).padding([1, 1]),
        ),
    ]
}

fn conv(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv2d");
    group.sample_size(20);
    let par = Parallelism::Sequential;
    for (name, desc) in layers() {
        let [oh, ow] = desc.output_hw().expect("valid layer");
        let x = vec![0.01f32; desc.batch * desc.in_channels * desc.input[0] * desc.input[1]];
        let w = vec![0.02f32; desc.weight_len()];
        let bias = vec![0.1f32; desc.out_channels];
        let dy = vec![0.03f32; desc.batch * desc.out_channels * oh * ow];
        let (mut y, mut dx) = (vec![0.0f32; dy.len()], vec![0.0f32; x.len()]);
        let (mut dw, mut db) = (vec![0.0f32; w.len()], vec![0.0f32; desc.out_channels]);
        group.throughput(Throughput::Elements(desc.flops() as u64));
        let epilogue = ConvEpilogue {
            bias: Some(&bias),
            activation: Activation::Relu,
        };
        group.bench_function(BenchmarkId::new("forward", name), |b| {
            b.iter(|| {
                conv2d_forward(&desc, &x, &w, epilogue, &mut y, par).expect("valid layer");
                black_box(&y);
            })
        });
        group.bench_function(BenchmarkId::new("backward_data", name), |b| {
            b.iter(|| {
                conv2d_backward_data(&desc, &dy, &w, &mut dx, par).expect("valid layer");
                black_box(&dx);
            })
        });
        group.bench_function(BenchmarkId::new("backward_weights", name), |b| {
            b.iter(|| {
                conv2d_backward_weights(&desc, &x, &dy, &mut dw, Some(&mut db), par)
                    .expect("valid layer");
                black_box(&dw);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, conv);
criterion_main!(benches);
