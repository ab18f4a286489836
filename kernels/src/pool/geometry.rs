//! Window geometry shared by every ISA path: which inputs a window covers, which windows
//! cover an input, which outputs a vector block may take without bounds checks.
//!
//! Along one axis, window `o` covers the padded positions `o·stride .. o·stride + kernel`,
//! that is the input positions `o·stride − padding ..` clipped to the input. Padding is
//! never read.

use super::Pool2dDesc;
use std::ops::Range;

/// One spatial axis of a validated pooling descriptor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Axis {
    pub input: usize,
    pub output: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Axis {
    /// The real input positions window `o` covers; never empty for a validated
    /// descriptor (padding ≤ kernel / 2 leaves every window a real position).
    #[inline]
    pub fn real(self, o: usize) -> Range<usize> {
        let start = o * self.stride;
        let end = start + self.kernel;
        start.saturating_sub(self.padding)..end.saturating_sub(self.padding).min(self.input)
    }

    /// Positions of window `o` once clipped to the padded input: PyTorch's
    /// `count_include_pad` divisor term.
    #[inline]
    pub fn padded_len(self, o: usize) -> usize {
        let start = o * self.stride;
        (start + self.kernel).min(self.input + 2 * self.padding) - start
    }

    /// The windows (outputs) that cover input position `i`, in increasing order.
    #[inline]
    pub fn windows_of(self, i: usize) -> Range<usize> {
        let pos = i + self.padding;
        // o·stride ≤ pos < o·stride + kernel
        let end = (pos / self.stride + 1).min(self.output);
        let start = (pos + 1).saturating_sub(self.kernel).div_ceil(self.stride);
        start.min(end)..end
    }

    /// [`Axis::windows_of`] for every input position in order, found by stepping instead
    /// of dividing.
    pub fn windows_of_each(self) -> impl Iterator<Item = Range<usize>> {
        let (mut start, mut end) = (0, 0);
        (0..self.input).map(move |i| {
            let pos = i + self.padding;
            while end < self.output && end * self.stride <= pos {
                end += 1;
            }
            while start < end && start * self.stride + self.kernel <= pos {
                start += 1;
            }
            start..end
        })
    }

    /// Outputs whose whole window lies inside the input: no padding, no clipping.
    pub fn interior(self) -> Range<usize> {
        let start = self.padding.div_ceil(self.stride);
        let end = match (self.input + self.padding).checked_sub(self.kernel) {
            Some(room) => (room / self.stride + 1).min(self.output),
            None => 0,
        };
        start.min(end)..end
    }

    /// Whether no input lies in two windows.
    pub fn disjoint(self) -> bool {
        self.stride >= self.kernel
    }

    /// Vector blocks of `lanes` consecutive outputs, where a block starting at output `o`
    /// reads the inputs `o·stride − padding .. + extent`: the first and last block starts
    /// such that every block lies in [`Axis::interior`] and reads inside the input.
    /// Blocks run `first, first + lanes, …` and end with one at `last`, which may overlap
    /// the one before; `None` when not even one block fits.
    pub fn blocks(self, lanes: usize, extent: usize) -> Option<(usize, usize)> {
        let interior = self.interior();
        let by_window = interior.end.checked_sub(lanes)?;
        let by_reads = (self.input + self.padding).checked_sub(extent)? / self.stride;
        let last = by_window.min(by_reads);
        (last >= interior.start).then_some((interior.start, last))
    }
}

/// The starts of the blocks of [`Axis::blocks`]: `first, first + lanes, …` below `last`,
/// then `last`.
pub(crate) fn block_starts(first: usize, last: usize, lanes: usize) -> impl Iterator<Item = usize> {
    (first..last).step_by(lanes).chain(std::iter::once(last))
}

/// One image of a pooling problem: `rows.input × cols.input` pixels of `channels`
/// interleaved channels — an NHWC image, or one NCHW plane with `channels = 1`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub rows: Axis,
    pub cols: Axis,
    pub channels: usize,
}

impl Geometry {
    /// The geometry of one image of a validated descriptor, with `channels` interleaved.
    pub fn new(desc: &Pool2dDesc, [oh, ow]: [usize; 2], channels: usize) -> Geometry {
        let axis = |d: usize, output| Axis {
            input: desc.input[d],
            output,
            kernel: desc.kernel[d],
            stride: desc.stride[d],
            padding: desc.padding[d],
        };
        Geometry {
            rows: axis(0, oh),
            cols: axis(1, ow),
            channels,
        }
    }

    /// Elements of one input image.
    pub fn input_len(&self) -> usize {
        self.rows.input * self.cols.input * self.channels
    }

    /// Elements of one output image.
    pub fn output_len(&self) -> usize {
        self.rows.output * self.cols.output * self.channels
    }

    /// Elements of one input row (all its pixels and channels).
    pub fn input_row_len(&self) -> usize {
        self.cols.input * self.channels
    }

    /// Elements of one output row.
    pub fn output_row_len(&self) -> usize {
        self.cols.output * self.channels
    }

    /// The divisor of average window `(oh, ow)`: its size clipped to the padded input
    /// when `count_include_pad`, else the number of real inputs it covers — as the
    /// product of its row and column counts, in f32, the same on every path.
    #[inline]
    pub fn divisor(&self, oh: usize, ow: usize, count_include_pad: bool) -> f32 {
        self.row_count(oh, count_include_pad) * self.col_count(ow, count_include_pad)
    }

    /// The row count of window row `oh`'s divisors.
    #[inline]
    pub fn row_count(&self, oh: usize, count_include_pad: bool) -> f32 {
        count(self.rows, oh, count_include_pad)
    }

    /// The column count of window column `ow`'s divisors.
    #[inline]
    pub fn col_count(&self, ow: usize, count_include_pad: bool) -> f32 {
        count(self.cols, ow, count_include_pad)
    }

    /// The divisor shared by every interior column of output row `oh`.
    #[inline]
    pub fn interior_divisor(&self, oh: usize, count_include_pad: bool) -> f32 {
        self.row_count(oh, count_include_pad) * self.cols.kernel as f32
    }
}

/// Positions of window `o` along `axis` that its average divides by.
#[inline]
fn count(axis: Axis, o: usize, count_include_pad: bool) -> f32 {
    let positions = if count_include_pad {
        axis.padded_len(o)
    } else {
        axis.real(o).len()
    };
    positions as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(input: usize, kernel: usize, stride: usize, padding: usize) -> Axis {
        let output = (input + 2 * padding - kernel) / stride + 1;
        Axis {
            input,
            output,
            kernel,
            stride,
            padding,
        }
    }

    /// `windows_of` and `interior` agree with `real` on every axis up to small sizes.
    #[test]
    fn window_queries_agree_with_the_definition() {
        for input in 1..12 {
            for kernel in 1..=input + 2 {
                for stride in 1..5 {
                    for padding in 0..=kernel / 2 {
                        if kernel > input + 2 * padding {
                            continue;
                        }
                        let a = axis(input, kernel, stride, padding);
                        for (i, stepped) in (0..input).zip(a.windows_of_each()) {
                            let want: Vec<usize> =
                                (0..a.output).filter(|&o| a.real(o).contains(&i)).collect();
                            assert_eq!(a.windows_of(i).collect::<Vec<_>>(), want, "{a:?} {i}");
                            assert_eq!(stepped.collect::<Vec<_>>(), want, "{a:?} {i}");
                        }
                        let inside: Vec<usize> = (0..a.output)
                            .filter(|&o| {
                                o * stride >= padding && o * stride - padding + kernel <= input
                            })
                            .collect();
                        assert_eq!(a.interior().collect::<Vec<_>>(), inside, "{a:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn blocks_stay_inside_the_interior_and_the_reads() {
        for input in 1..40 {
            for (kernel, stride, padding) in [(2, 2, 0), (3, 2, 1), (3, 1, 1), (1, 3, 0)] {
                if kernel > input + 2 * padding {
                    continue;
                }
                let a = axis(input, kernel, stride, padding);
                let extent = 7 * stride + kernel + 1;
                if let Some((first, last)) = a.blocks(8, extent) {
                    let interior = a.interior();
                    for start in block_starts(first, last, 8) {
                        assert!(interior.start <= start && start + 8 <= interior.end);
                        assert!(start * stride - padding + extent <= input, "{a:?} {start}");
                    }
                }
            }
        }
        let a = axis(26, 2, 2, 0);
        assert_eq!(a.blocks(8, 16), Some((0, 5)));
        assert_eq!(block_starts(0, 5, 8).collect::<Vec<_>>(), [0, 5]);
        assert_eq!(block_starts(0, 16, 8).collect::<Vec<_>>(), [0, 8, 16]);
    }
}
