//! A labelled image set in memory, its mini-batches and its train/validation split.

use super::augment::Augment;
use super::idx::read_idx;
use crate::error::{Error, Result};
use crate::rng::Rng;
use std::path::Path;

/// Images (`len × sample_shape`, f32) and one class label each.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    sample_shape: Vec<usize>,
    images: Vec<f32>,
    labels: Vec<u32>,
    classes: usize,
}

impl Dataset {
    /// A dataset from images and labels; every label must be below `classes`.
    pub fn new(
        sample_shape: &[usize],
        images: Vec<f32>,
        labels: Vec<u32>,
        classes: usize,
    ) -> Result<Dataset> {
        let sample: usize = sample_shape.iter().product();
        if images.len() != sample * labels.len() {
            return Err(Error::shape(
                "dataset images",
                format!("{} labels × {sample} values", labels.len()),
                images.len(),
            ));
        }
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= classes) {
            return Err(Error::invalid(
                "dataset label",
                format!("{bad} is not below the class count {classes}"),
            ));
        }
        Ok(Dataset {
            sample_shape: sample_shape.to_vec(),
            images,
            labels,
            classes,
        })
    }

    /// MNIST-style IDX images (`n × rows × cols` bytes, scaled to [0, 1] as
    /// torchvision's `ToTensor` does) and labels (`n` bytes, 10 classes).
    pub fn from_idx(images: &Path, labels: &Path) -> Result<Dataset> {
        let img = read_idx(images)?;
        let lab = read_idx(labels)?;
        let [n, rows, cols] = img.dims[..] else {
            return Err(Error::format(
                images,
                format!(
                    "image files have 3 dimensions (count, rows, cols), this one {:?}",
                    img.dims
                ),
            ));
        };
        let [count] = lab.dims[..] else {
            return Err(Error::format(
                labels,
                format!(
                    "label files have 1 dimension (count), this one {:?}",
                    lab.dims
                ),
            ));
        };
        if count != n {
            return Err(Error::format(
                labels,
                format!("{count} labels for the {n} images of {}", images.display()),
            ));
        }
        if let Some(at) = lab.data.iter().position(|&l| l >= 10) {
            return Err(Error::format(
                labels,
                format!("label {} at {at} is not a class 0..9", lab.data[at]),
            ));
        }
        let pixels = img.data.iter().map(|&b| f32::from(b) / 255.0).collect();
        Dataset::new(
            &[1, rows, cols],
            pixels,
            lab.data.iter().map(|&l| u32::from(l)).collect(),
            10,
        )
    }

    /// `len` random images (uniform in [0, 1)) with random labels: for profiling
    /// without a download.
    pub fn synthetic(len: usize, sample_shape: &[usize], classes: usize, seed: u64) -> Dataset {
        let mut rng = Rng::new(seed);
        let sample: usize = sample_shape.iter().product();
        Dataset {
            sample_shape: sample_shape.to_vec(),
            images: (0..len * sample).map(|_| rng.uniform()).collect(),
            labels: (0..len).map(|_| rng.below(classes.max(1)) as u32).collect(),
            classes,
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// Standardizes every value as torchvision's `Normalize(mean, std)`: (v − mean)/std.
    pub fn normalize(&mut self, mean: f32, std: f32) -> Result<()> {
        if !(std > 0.0 && std.is_finite() && mean.is_finite()) {
            return Err(Error::invalid(
                "normalization",
                format!("needs a finite mean and a positive std, got {mean} and {std}"),
            ));
        }
        let inv = 1.0 / std;
        self.images.iter_mut().for_each(|v| *v = (*v - mean) * inv);
        Ok(())
    }

    /// The first `len` samples.
    pub fn truncated(&self, len: usize) -> Dataset {
        let len = len.min(self.len());
        Dataset {
            sample_shape: self.sample_shape.clone(),
            images: self.images[..len * self.sample_len()].to_vec(),
            labels: self.labels[..len].to_vec(),
            classes: self.classes,
        }
    }

    /// A random `validation` fraction held out: (training part, validation part).
    pub fn split(&self, validation: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(0.0..1.0).contains(&validation) {
            return Err(Error::invalid(
                "validation fraction",
                format!("must be in [0, 1), got {validation}"),
            ));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        Rng::new(seed).shuffle(&mut order);
        let held = (self.len() as f64 * validation).round() as usize;
        let pick = |indices: &[usize]| {
            let s = self.sample_len();
            let mut images = Vec::with_capacity(indices.len() * s);
            for &i in indices {
                images.extend_from_slice(&self.images[i * s..(i + 1) * s]);
            }
            Dataset {
                sample_shape: self.sample_shape.clone(),
                images,
                labels: indices.iter().map(|&i| self.labels[i]).collect(),
                classes: self.classes,
            }
        };
        Ok((pick(&order[held..]), pick(&order[..held])))
    }

    /// Copies the samples at `indices` into `out` (augmented when asked) and their labels
    /// into `labels`. Errors: an index past the end, or `out` not holding exactly the
    /// samples asked for.
    pub fn fill(
        &self,
        indices: &[usize],
        out: &mut [f32],
        labels: &mut Vec<u32>,
        augment: &Augment,
        rng: &mut Rng,
    ) -> Result<()> {
        let s = self.sample_len();
        if out.len() != indices.len() * s {
            return Err(Error::shape(
                "batch buffer",
                format!("{} samples × {s} values", indices.len()),
                out.len(),
            ));
        }
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::invalid(
                "sample index",
                format!("{bad} is past the {} samples of the dataset", self.len()),
            ));
        }
        labels.clear();
        for (dst, &i) in out.chunks_exact_mut(s).zip(indices) {
            let src = &self.images[i * s..(i + 1) * s];
            match self.sample_shape[..] {
                [c, h, w] if !augment.is_identity() => augment.apply(src, dst, [c, h, w], rng),
                _ => dst.copy_from_slice(src),
            }
            labels.push(self.labels[i]);
        }
        Ok(())
    }
}

/// One pass over a dataset in mini-batches, shuffled or in order. The last batch may
/// be smaller (PyTorch's `drop_last = False`).
#[derive(Debug, Clone)]
pub struct Epoch {
    order: Vec<usize>,
    batch: usize,
    next: usize,
}

impl Epoch {
    pub fn new(len: usize, batch: usize, shuffle: Option<&mut Rng>) -> Result<Epoch> {
        if batch == 0 {
            return Err(Error::invalid("batch size", "must be at least 1, got 0"));
        }
        let mut order: Vec<usize> = (0..len).collect();
        if let Some(rng) = shuffle {
            rng.shuffle(&mut order);
        }
        Ok(Epoch {
            order,
            batch,
            next: 0,
        })
    }

    /// The indices of the next batch, or `None` at the end of the epoch.
    pub fn next_batch(&mut self) -> Option<&[usize]> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.batch).min(self.order.len());
        let batch = &self.order[self.next..end];
        self.next = end;
        Some(batch)
    }

    /// Batches in the epoch.
    pub fn batches(&self) -> usize {
        self.order.len().div_ceil(self.batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_cover_every_sample_once() {
        let mut rng = Rng::new(1);
        let mut epoch = Epoch::new(10, 4, Some(&mut rng)).unwrap();
        assert_eq!(epoch.batches(), 3);
        let mut seen = Vec::new();
        while let Some(b) = epoch.next_batch() {
            seen.extend_from_slice(b);
        }
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert!(Epoch::new(10, 0, None).is_err());
    }

    #[test]
    fn split_and_bad_labels() {
        let ds = Dataset::synthetic(100, &[1, 2, 2], 3, 5);
        let (train, val) = ds.split(0.2, 0).unwrap();
        assert_eq!((train.len(), val.len()), (80, 20));
        assert!(ds.split(1.0, 0).is_err());
        assert!(Dataset::new(&[2], vec![0.0; 4], vec![0, 3], 3).is_err());
        assert!(Dataset::new(&[2], vec![0.0; 3], vec![0, 1], 3).is_err());
    }
}
