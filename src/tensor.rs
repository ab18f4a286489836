//! Dense f32 tensors: a shape and contiguous row-major storage.

use crate::error::{Error, Result};
use axonal_kernels::Layout;

/// A dense f32 tensor. The shape of an image batch is always `[n, c, h, w]`; `layout`
/// says how it is stored: NCHW (PyTorch's default, and the only order of tensors that
/// are not 4-D) or NHWC (channels last). Matrices are row-major (batch, features).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
    layout: Layout,
}

/// Elements of a tensor of `shape`, or an error naming `what` if that overflows.
pub fn element_count(what: &str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Error::invalid(what, format!("shape {shape:?} overflows usize")))
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Result<Tensor> {
        let len = element_count("tensor", shape)?;
        Ok(Tensor {
            shape: shape.to_vec(),
            data: vec![0.0; len],
            layout: Layout::Nchw,
        })
    }

    /// A tensor over `data`, which must hold exactly the shape's element count.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Tensor> {
        let len = element_count("tensor", shape)?;
        if len != data.len() {
            return Err(Error::shape(
                format!("tensor data for shape {shape:?}"),
                len,
                data.len(),
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
            layout: Layout::Nchw,
        })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// How a 4-D tensor's elements are ordered in `data` (NCHW for other ranks).
    pub fn layout(&self) -> Layout {
        if self.shape.len() == 4 {
            self.layout
        } else {
            Layout::Nchw
        }
    }

    /// Declares the storage order of a 4-D tensor (the data is not moved).
    pub fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Gives the tensor a new shape, keeping its storage (and its capacity, so that a
    /// shape it has held before costs no allocation). New elements are zero.
    pub fn reshape_storage(&mut self, shape: &[usize]) -> Result<()> {
        let len = element_count("tensor", shape)?;
        if self.shape != shape {
            self.shape.clear();
            self.shape.extend_from_slice(shape);
        }
        self.data.resize(len, 0.0);
        Ok(())
    }

    /// The tensor's storage, given up.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_lengths_and_overflow_are_errors() {
        assert!(Tensor::from_vec(&[2, 3], vec![0.0; 5]).is_err());
        assert!(Tensor::zeros(&[usize::MAX, 2]).is_err());
        let t = Tensor::from_vec(&[2, 3], vec![1.0; 6]).unwrap();
        assert_eq!(t.shape(), &[2, 3]);
    }

    #[test]
    fn reshaping_to_a_smaller_shape_keeps_the_capacity() {
        let mut t = Tensor::zeros(&[4, 8]).unwrap();
        let cap = t.data.capacity();
        t.reshape_storage(&[2, 8]).unwrap();
        assert_eq!(t.len(), 16);
        t.reshape_storage(&[4, 8]).unwrap();
        assert_eq!(t.data.capacity(), cap);
    }
}
