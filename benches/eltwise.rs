//! Fused bias + activation, forward and backward, on NCHW tensors of 64 channels of
//! 32 × 32, and the optimizer updates (SGD momentum, Adam, AdamW) and dropout over flat
//! arrays, with one array in L2 (256 KiB), in L3 (4 MiB) and far beyond L3 (256 MiB).
//!
//! `cargo bench --bench eltwise`; criterion's reports land in target/criterion. For a
//! table with fractions of the measured copy bandwidth use `axonal bench eltwise`.

use axonal::kernels::dropout::{dropout_backward_masked, dropout_forward, mask_words, Dropout};
use axonal::kernels::eltwise::{
    bias_activation_backward, bias_activation_forward, Activation, BiasShape, Saved,
};
use axonal::kernels::optim::{adam_step, sgd_step, Adam, Sgd};
use axonal::kernels::Parallelism;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

const CHANNELS: usize = 64;
const PLANE: usize = 1024;

/// (label, bytes of one array).
const SIZES: [(&str, usize); 3] = [("l2", 256 << 10), ("l3", 4 << 20), ("dram", 256 << 20)];

/// (name, activation, backward).
const KERNELS: [(&str, Activation, bool); 5] = [
    ("bias_relu_forward", Activation::Relu, false),
    ("bias_relu_backward", Activation::Relu, true),
    ("bias_gelu_forward", Activation::Gelu, false),
    ("bias_gelu_backward", Activation::Gelu, true),
    ("bias_sigmoid_forward", Activation::Sigmoid, false),
];

fn eltwise(c: &mut Criterion) {
    let par = Parallelism::Sequential;
    for (label, bytes) in SIZES {
        let mut group = c.benchmark_group(format!("eltwise_{label}"));
        if label == "dram" {
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(4));
        }
        let shape = BiasShape::new(bytes / 4 / (CHANNELS * PLANE), CHANNELS, PLANE);
        let n = shape.len();
        let x: Vec<f32> = (0..n).map(|i| ((i % 29) as f32 - 14.0) * 0.25).collect();
        let dy: Vec<f32> = (0..n).map(|i| ((i % 13) as f32 - 6.0) * 0.1).collect();
        let bias: Vec<f32> = (0..CHANNELS).map(|c| (c as f32 - 32.0) * 0.01).collect();
        let mut out = vec![0.0f32; n];
        let mut db = vec![0.0f32; CHANNELS];
        for (name, act, backward) in KERNELS {
            // Bytes read and written once: x and y forward; saved, dy and dz backward.
            let arrays = if backward { 3 } else { 2 };
            group.throughput(Throughput::Bytes((arrays * n * 4) as u64));
            group.bench_function(BenchmarkId::new(name, label), |bench| {
                bench.iter(|| {
                    if backward {
                        // ReLU's gradient reads y; GELU's recomputes z from x and the bias.
                        let saved = if act == Activation::Relu {
                            Saved::Output(&x)
                        } else {
                            Saved::Input {
                                x: &x,
                                bias: Some(&bias),
                            }
                        };
                        bias_activation_backward(
                            &shape,
                            act,
                            saved,
                            &dy,
                            &mut out,
                            Some(&mut db),
                            par,
                        )
                        .expect("valid shapes");
                    } else {
                        bias_activation_forward(&shape, act, &x, Some(&bias), &mut out, par)
                            .expect("valid shapes");
                    }
                    black_box(&out);
                })
            });
        }
        updates(&mut group, label, n);
        group.finish();
    }
}

/// The optimizer updates and dropout on arrays of `n` floats. Throughput counts every
/// array read or written once: SGD p, g, buf in and p, buf out; Adam p, g, m, v in and
/// p, m, v out; dropout x in, y and the bit mask out.
fn updates(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    n: usize,
) {
    let par = Parallelism::Sequential;
    // No zero gradient: a zero would decay the state into denormals over the repeated
    // steps and measure the FPU's denormal assists instead of the kernel.
    let grad: Vec<f32> = (0..n).map(|i| ((i % 13) as f32 - 6.5) * 0.1).collect();
    let mut param: Vec<f32> = (0..n).map(|i| ((i % 17) as f32 - 8.0) * 0.1).collect();
    let mut m = vec![0.01f32; n];
    let mut v = vec![0.001f32; n];
    let bytes = |arrays: f64| Throughput::Bytes((arrays * (n * 4) as f64) as u64);

    group.throughput(bytes(5.0));
    let sgd = Sgd {
        momentum: 0.9,
        ..Sgd::new(1e-3)
    };
    group.bench_function(BenchmarkId::new("sgd_momentum_step", label), |bench| {
        bench.iter(|| {
            sgd_step(&sgd, 2, &mut param, &grad, &mut m, par).expect("valid lengths");
            black_box(&param);
        })
    });
    group.throughput(bytes(7.0));
    for (name, h) in [
        ("adam_step", Adam::new(1e-3)),
        ("adamw_step", Adam::adamw(1e-3, 0.01)),
    ] {
        group.bench_function(BenchmarkId::new(name, label), |bench| {
            bench.iter(|| {
                adam_step(&h, 2, &mut param, &grad, &mut m, &mut v, par).expect("valid lengths");
                black_box(&param);
            })
        });
    }

    let dropout = Dropout::new(0.5, 7, 1);
    let mut mask = vec![0u32; mask_words(n)];
    group.throughput(bytes(2.0 + 1.0 / 32.0));
    group.bench_function(BenchmarkId::new("dropout_forward", label), |bench| {
        bench.iter(|| {
            dropout_forward(&dropout, &grad, &mut v, Some(&mut mask), par).expect("valid p");
            black_box(&v);
        })
    });
    group.bench_function(BenchmarkId::new("dropout_backward_mask", label), |bench| {
        bench.iter(|| {
            dropout_backward_masked(dropout.p, &mask, &grad, &mut v, par).expect("valid p");
            black_box(&v);
        })
    });
}

criterion_group!(benches, eltwise);
criterion_main!(benches);
