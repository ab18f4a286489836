//! Training on real data: the seed CNN on a subset of Fashion-MNIST (Debian's
//! `dataset-fashion-mnist`, which `.ci/run` installs) must lower its loss and beat
//! chance clearly. Without the files the test says so and passes, unless
//! `AXONAL_REQUIRE_DATA` is set (as in CI).

use axonal::data::{load_mnist_dir, Augment, Dataset, FASHION_MNIST_DIR};
use axonal::kernels::optim::Adam;
use axonal::optim::{Method, Optimizer};
use axonal::train::{evaluate, train_epoch};
use axonal::{models, Context, Rng};
use std::path::{Path, PathBuf};

#[test]
fn seed_cnn_learns_fashion_mnist() {
    let dir = std::env::var_os("AXONAL_FASHION_MNIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(FASHION_MNIST_DIR));
    if !dir.exists() {
        assert!(
            std::env::var_os("AXONAL_REQUIRE_DATA").is_none(),
            "{} is missing (apt-get install dataset-fashion-mnist)",
            dir.display()
        );
        eprintln!("skipped: {} is missing", dir.display());
        return;
    }
    let (train, test) = load_mnist_dir(&dir).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    let (train, test) = (train.truncated(3_000), test.truncated(1_000));
    let mut model = models::build("seed_cnn", 0).unwrap();
    let mut opt = Optimizer::new(Method::Adam(Adam::new(1e-3))).unwrap();
    let ctx = Context::default();
    let mut losses = Vec::new();
    for epoch in 0..2 {
        let mut rng = Rng::new(epoch);
        let m = train_epoch(
            &mut model.graph,
            model.loss,
            &mut opt,
            &ctx,
            &train,
            64,
            &Augment::default(),
            &mut rng,
            &mut |_, _, _| {},
        )
        .unwrap();
        losses.push(m.loss);
    }
    let eval = evaluate(&mut model.graph, model.loss, ctx.par, &test, 250).unwrap();
    assert!(losses[1] < losses[0], "loss did not fall: {losses:?}");
    assert!(
        eval.accuracy > 0.6,
        "test accuracy {:.3} (chance is 0.1)",
        eval.accuracy
    );
}

/// Writes an IDX file of unsigned bytes.
fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
    let mut bytes = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn mismatched_and_broken_files_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("axonal-idx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let images = dir.join("images");
    let labels = dir.join("labels");
    write_idx(&images, &[3, 2, 2], &[0; 12]);
    write_idx(&labels, &[2], &[1, 2]);
    let err = Dataset::from_idx(&images, &labels).unwrap_err().to_string();
    assert!(
        err.contains("labels") && err.contains("2 labels for the 3 images"),
        "{err}"
    );
    write_idx(&labels, &[3], &[1, 2, 12]);
    let err = Dataset::from_idx(&images, &labels).unwrap_err().to_string();
    assert!(err.contains("label 12"), "{err}");
    write_idx(&labels, &[3], &[1, 2, 3]);
    let ok = Dataset::from_idx(&images, &labels).unwrap();
    assert_eq!(ok.sample_shape(), [1, 2, 2]);
    let gz = dir.join("images.gz");
    std::fs::write(&gz, b"not gzip at all").unwrap();
    let err = Dataset::from_idx(&gz, &labels).unwrap_err().to_string();
    assert!(err.contains("images.gz") && err.contains("gzip"), "{err}");
    write_idx(&labels, &[3, 1], &[1, 2, 3]);
    let err = Dataset::from_idx(&images, &labels).unwrap_err().to_string();
    assert!(err.contains("1 dimension"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
