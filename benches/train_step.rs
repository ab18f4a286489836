//! One whole training step (forward, loss, backward, optimizer) of seed_cnn,
//! seed_cnn_bn and mlp at batch 64, one thread, so that criterion's reports track
//! whole-step regressions.
//!
//! `cargo bench --bench train_step`; throughput is in images. For the per-layer picture
//! use `axonal profile`.

use axonal::data::{Augment, Dataset};
use axonal::kernels::optim::{Adam, Sgd};
use axonal::optim::{Method, Optimizer};
use axonal::train::{train_step, Batch};
use axonal::{models, Context, Rng};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const BATCH: usize = 64;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group.throughput(Throughput::Elements(BATCH as u64));
    for name in ["seed_cnn", "seed_cnn_bn", "mlp"] {
        let mut model = models::build(name, 0).unwrap();
        let data = Dataset::synthetic(BATCH, model.graph.sample_shape(), 10, 1);
        let method = match name {
            "mlp" => Method::Sgd(Sgd::new(0.01)),
            _ => Method::Adam(Adam::new(1e-3)),
        };
        let mut opt = Optimizer::new(method).unwrap();
        let indices: Vec<usize> = (0..BATCH).collect();
        let (mut rng, mut batch) = (Rng::new(0), Batch::default());
        let ctx = Context::default();
        group.bench_function(BenchmarkId::new(name, BATCH), |b| {
            b.iter(|| {
                train_step(
                    &mut model.graph,
                    model.loss,
                    &mut opt,
                    &ctx,
                    &data,
                    &indices,
                    &Augment::default(),
                    &mut rng,
                    &mut batch,
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
