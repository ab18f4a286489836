//! Training data: IDX files (MNIST, Fashion-MNIST), mini-batches, augmentation.

mod augment;
mod dataset;
mod idx;

pub use augment::Augment;
pub use dataset::{Dataset, Epoch};
pub use idx::{read_idx, Idx};

use crate::error::Result;
use std::path::{Path, PathBuf};

/// Where Debian's `dataset-fashion-mnist` package puts the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The training and test sets of an MNIST-style directory (`train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`, `t10k-…`, each raw or `.gz`).
pub fn load_mnist_dir(dir: &Path) -> Result<(Dataset, Dataset)> {
    let file = |stem: &str| -> PathBuf {
        let raw = dir.join(stem);
        if raw.exists() {
            raw
        } else {
            dir.join(format!("{stem}.gz"))
        }
    };
    let train = Dataset::from_idx(
        &file("train-images-idx3-ubyte"),
        &file("train-labels-idx1-ubyte"),
    )?;
    let test = Dataset::from_idx(
        &file("t10k-images-idx3-ubyte"),
        &file("t10k-labels-idx1-ubyte"),
    )?;
    Ok((train, test))
}
