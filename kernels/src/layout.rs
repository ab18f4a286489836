//! Memory layouts of 4-D activation tensors.

/// How a batch of images is laid out in memory.
///
/// Weights are always OIHW (PyTorch's order), whatever the activation layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// Batch, channels, height, width: PyTorch's and ONNX's default.
    #[default]
    Nchw,
    /// Batch, height, width, channels: "channels last".
    Nhwc,
}

/// The sizes of a 4-D activation tensor, independent of its layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dims4 {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Dims4 {
    /// Number of elements (the caller has already checked that it does not overflow).
    pub fn len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Whether the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Layout {
    /// Offset of element (n, c, h, w) in a dense tensor of sizes `dims`.
    #[inline]
    pub fn index(self, dims: Dims4, n: usize, c: usize, h: usize, w: usize) -> usize {
        match self {
            Layout::Nchw => ((n * dims.c + c) * dims.h + h) * dims.w + w,
            Layout::Nhwc => ((n * dims.h + h) * dims.w + w) * dims.c + c,
        }
    }

    /// The lower-case name, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Nchw => "nchw",
            Layout::Nhwc => "nhwc",
        }
    }
}

/// Side of the square blocks [`transpose_images`] moves at a time: 8 × 8 floats, read
/// as eight runs and written as eight, which the compiler keeps in registers.
const TRANSPOSE_BLOCK: usize = 8;

/// Each `rows × cols` row-major matrix of `src` (one image: channels × pixels in NCHW,
/// or pixels × channels in NHWC) transposed into `dst`, which is as long: NCHW images to
/// NHWC with `rows` the channels, and back with `rows` the pixels.
pub(crate) fn transpose_images(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const B: usize = TRANSPOSE_BLOCK;
    let image = rows * cols;
    if image == 0 {
        return;
    }
    let (full_rows, full_cols) = (rows - rows % B, cols - cols % B);
    for (src, dst) in src.chunks_exact(image).zip(dst.chunks_exact_mut(image)) {
        for i0 in (0..full_rows).step_by(B) {
            for j0 in (0..full_cols).step_by(B) {
                let mut block = [[0.0f32; B]; B];
                for (i, values) in block.iter_mut().enumerate() {
                    *values = src[(i0 + i) * cols + j0..][..B]
                        .try_into()
                        .expect("B values");
                }
                for j in 0..B {
                    let out: &mut [f32; B] = (&mut dst[(j0 + j) * rows + i0..][..B])
                        .try_into()
                        .expect("B values");
                    for (slot, values) in out.iter_mut().zip(&block) {
                        *slot = values[j];
                    }
                }
            }
        }
        // The ragged right and bottom edges, one element at a time.
        for i in 0..rows {
            let from = if i < full_rows { full_cols } else { 0 };
            for j in from..cols {
                dst[j * rows + i] = src[i * cols + j];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposing_images_swaps_their_layout() {
        // Whole 8 × 8 blocks and ragged edges both ways.
        let dims = Dims4 {
            n: 2,
            c: 11,
            h: 5,
            w: 7,
        };
        let nchw: Vec<f32> = (0..dims.len()).map(|i| i as f32).collect();
        let mut nhwc = vec![0.0; dims.len()];
        transpose_images(&nchw, dims.c, dims.h * dims.w, &mut nhwc);
        for n in 0..dims.n {
            for c in 0..dims.c {
                for h in 0..dims.h {
                    for w in 0..dims.w {
                        assert_eq!(
                            nhwc[Layout::Nhwc.index(dims, n, c, h, w)],
                            nchw[Layout::Nchw.index(dims, n, c, h, w)]
                        );
                    }
                }
            }
        }
        let mut back = vec![0.0; dims.len()];
        transpose_images(&nhwc, dims.h * dims.w, dims.c, &mut back);
        assert_eq!(back, nchw);
    }

    #[test]
    fn both_layouts_enumerate_every_offset_once() {
        let dims = Dims4 {
            n: 2,
            c: 3,
            h: 4,
            w: 5,
        };
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let mut seen = vec![false; dims.len()];
            for n in 0..dims.n {
                for c in 0..dims.c {
                    for h in 0..dims.h {
                        for w in 0..dims.w {
                            let i = layout.index(dims, n, c, h, w);
                            assert!(!seen[i], "{layout:?} repeats offset {i}");
                            seen[i] = true;
                        }
                    }
                }
            }
        }
    }
}
