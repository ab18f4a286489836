//! Where a per-channel bias lands in a dense tensor.

use crate::error::{product, Result};
use crate::layout::{Dims4, Layout};

/// A dense tensor seen as `outer × channels × inner`, with one bias value per channel:
/// element (o, c, i) is at `(o·channels + c)·inner + i` and receives `bias[c]`.
///
/// NCHW images are `n × c × (h·w)`, NHWC images `(n·h·w) × c × 1`, and a row-major
/// matrix with a bias per column (a linear layer's output) is `rows × cols × 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BiasShape {
    pub outer: usize,
    pub channels: usize,
    pub inner: usize,
}

impl BiasShape {
    /// The shape with these three sizes.
    pub fn new(outer: usize, channels: usize, inner: usize) -> Self {
        BiasShape {
            outer,
            channels,
            inner,
        }
    }

    /// A batch of images in `layout` with a bias per channel.
    pub fn image(dims: Dims4, layout: Layout) -> Result<Self> {
        match layout {
            Layout::Nchw => Ok(BiasShape::new(
                dims.n,
                dims.c,
                product("bias image plane", &[dims.h, dims.w])?,
            )),
            Layout::Nhwc => Ok(BiasShape::new(
                product("bias image pixels", &[dims.n, dims.h, dims.w])?,
                dims.c,
                1,
            )),
        }
    }

    /// A row-major `rows × cols` matrix with a bias per column.
    pub fn matrix(rows: usize, cols: usize) -> Self {
        BiasShape::new(rows, cols, 1)
    }

    /// Checks that the element count fits in `usize`.
    pub fn validate(&self) -> Result<()> {
        product("bias tensor", &[self.outer, self.channels, self.inner])?;
        Ok(())
    }

    /// Elements of the tensor (after [`BiasShape::validate`]).
    pub fn len(&self) -> usize {
        self.outer * self.channels * self.inner
    }

    /// Whether the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Offset of element (o, c, i).
    #[inline]
    pub fn index(&self, o: usize, c: usize, i: usize) -> usize {
        (o * self.channels + c) * self.inner + i
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::KernelError;

    #[test]
    fn image_shapes_put_the_bias_on_the_channel() {
        let dims = Dims4 {
            n: 2,
            c: 3,
            h: 4,
            w: 5,
        };
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let shape = BiasShape::image(dims, layout).unwrap();
            assert_eq!(shape.len(), dims.len());
            for n in 0..dims.n {
                for c in 0..dims.c {
                    for h in 0..dims.h {
                        for w in 0..dims.w {
                            let at = layout.index(dims, n, c, h, w);
                            let (o, i) = match layout {
                                Layout::Nchw => (n, h * dims.w + w),
                                Layout::Nhwc => ((n * dims.h + h) * dims.w + w, 0),
                            };
                            assert_eq!(shape.index(o, c, i), at, "{layout:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn matrix_bias_is_per_column() {
        let shape = BiasShape::matrix(3, 4);
        assert_eq!(shape.index(2, 1, 0), 2 * 4 + 1);
        assert_eq!(shape.len(), 12);
    }

    #[test]
    fn overflowing_sizes_are_errors() {
        let huge = BiasShape::new(usize::MAX, 2, 1);
        assert!(matches!(
            huge.validate(),
            Err(KernelError::SizeOverflow { .. })
        ));
        let dims = Dims4 {
            n: 1,
            c: 1,
            h: usize::MAX,
            w: 2,
        };
        assert!(BiasShape::image(dims, Layout::Nchw).is_err());
        assert!(BiasShape::image(dims, Layout::Nhwc).is_err());
    }
}
