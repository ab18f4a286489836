//! Packing: copying blocks of op(A) and op(B) into the micro-panel order the
//! microkernels stream through, zero-padded to whole panels.
//!
//! A block of `mc × kc` becomes ⌈mc / mr⌉ micro-panels, each `kc × mr` stored k-major
//! (`panel[p * mr + i]`); a block of `kc × nc` becomes ⌈nc / nr⌉ micro-panels `kc × nr`
//! (`panel[p * nr + j]`). Rows or columns past the edge are zeros, so the microkernel
//! always computes whole tiles and the store step drops the padding.

use super::pack_avx2::pack_rows;

/// A strided view of a matrix: element (i, j) at `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct StridedMatrix<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl StridedMatrix<'_> {
    /// The same matrix transposed (no copy).
    pub fn t(self) -> Self {
        StridedMatrix {
            data: self.data,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// Packs rows `rows.0 .. rows.0 + rows.1` and columns `cols.0 .. cols.0 + cols.1` of `m`
/// into `width`-row micro-panels (the A side: panels run along the rows; B is packed as
/// its transpose).
///
/// `out` must hold `⌈rows.1 / width⌉ · width · cols.1` values.
pub(crate) fn pack_panels(
    m: StridedMatrix<'_>,
    rows: (usize, usize),
    cols: (usize, usize),
    width: usize,
    out: &mut [f32],
) {
    if m.row_stride == 1 {
        match width {
            16 => pack_contiguous::<16>(m, rows, cols, out),
            8 => pack_contiguous::<8>(m, rows, cols, out),
            6 => pack_contiguous::<6>(m, rows, cols, out),
            4 => pack_contiguous::<4>(m, rows, cols, out),
            _ => pack_gather(m, rows, cols, width, out),
        }
    } else {
        pack_gather(m, rows, cols, width, out);
    }
}

/// Packing when each column's rows are contiguous (a row-major B seen through its
/// transpose, a column-major A): the source is read column after column — one long
/// sequential run each, which the hardware prefetcher follows — and each run is dealt
/// out `W` values to each panel with fixed-size copies.
fn pack_contiguous<const W: usize>(
    m: StridedMatrix<'_>,
    (r0, rn): (usize, usize),
    (c0, cn): (usize, usize),
    out: &mut [f32],
) {
    let panel_len = W * cn;
    let (full, tail) = (rn / W, rn % W);
    for p in 0..cn {
        let start = r0 + (c0 + p) * m.col_stride;
        let column = &m.data[start..start + rn];
        for (q, values) in column.chunks_exact(W).take(full).enumerate() {
            let at = q * panel_len + p * W;
            let dst: &mut [f32; W] = (&mut out[at..at + W]).try_into().expect("W values");
            *dst = values.try_into().expect("W values");
        }
        if tail > 0 {
            let at = full * panel_len + p * W;
            out[at..at + tail].copy_from_slice(&column[full * W..]);
            out[at + tail..at + W].fill(0.0);
        }
    }
}

/// Packing by gathering each panel's rows (a row-major A, or any general layout).
fn pack_gather(
    m: StridedMatrix<'_>,
    (r0, rn): (usize, usize),
    (c0, cn): (usize, usize),
    width: usize,
    out: &mut [f32],
) {
    let panel_len = width * cn;
    for (q, panel) in out
        .chunks_exact_mut(panel_len)
        .take(rn.div_ceil(width))
        .enumerate()
    {
        let first = r0 + q * width;
        let live = width.min(r0 + rn - first);
        match width {
            6 => gather_panel::<6>(m, (first, live), (c0, cn), panel),
            8 => gather_panel::<8>(m, (first, live), (c0, cn), panel),
            16 => gather_panel::<16>(m, (first, live), (c0, cn), panel),
            4 => gather_panel::<4>(m, (first, live), (c0, cn), panel),
            _ => {
                // Other widths: one element at a time, zero rows past the edge.
                for (p, step) in panel.chunks_exact_mut(width).enumerate() {
                    for (i, slot) in step.iter_mut().enumerate() {
                        *slot = if i < live {
                            m.data[(first + i) * m.row_stride + (c0 + p) * m.col_stride]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// Packs a `W`-row panel whose source rows are not contiguous per column (the usual case
/// for a row-major A): its `live` rows are sliced once, so the inner loop is `live`
/// loads without bounds checks on the row starts and one `W`-wide store per column; rows
/// past the edge of the matrix are zeros.
fn gather_panel<const W: usize>(
    m: StridedMatrix<'_>,
    (first_row, live): (usize, usize),
    (first_col, cols): (usize, usize),
    panel: &mut [f32],
) {
    if cols == 0 {
        return;
    }
    let span = (cols - 1) * m.col_stride + 1;
    let rows: [&[f32]; W] = std::array::from_fn(|i| {
        if i < live {
            let start = (first_row + i) * m.row_stride + first_col * m.col_stride;
            &m.data[start..start + span]
        } else {
            &[]
        }
    });
    // Contiguous rows: the transposing AVX2 packs, where they exist for W.
    if live == W && m.col_stride == 1 && pack_rows(rows, cols, panel) {
        return;
    }
    for (p, step) in panel.chunks_exact_mut(W).take(cols).enumerate() {
        let at = p * m.col_stride;
        let step: &mut [f32; W] = step.try_into().expect("chunks of W");
        if live == W {
            for (slot, row) in step.iter_mut().zip(&rows) {
                *slot = row[at];
            }
        } else {
            for (i, slot) in step.iter_mut().enumerate() {
                *slot = if i < live { rows[i][at] } else { 0.0 };
            }
        }
    }
}

/// Elements a packed block of `extent` rows (A) or columns (B) by `depth` needs.
pub(crate) fn packed_len(extent: usize, depth: usize, width: usize) -> usize {
    extent.div_ceil(width) * width * depth
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Vec<f32> {
        let len = (rows - 1) * row_stride + (cols - 1) * col_stride + 1;
        let mut data = vec![-1.0; len];
        for i in 0..rows {
            for j in 0..cols {
                data[i * row_stride + j * col_stride] = (i * 100 + j) as f32;
            }
        }
        data
    }

    #[test]
    fn panels_hold_the_block_k_major_and_zero_padded() {
        // Row-major (6- and 16-row panels of row-major rows take the transposing AVX2
        // packs where the CPU has them: two steps of 8 columns and a tail of 3),
        // column-major and a padded general layout; panels of 4, 6 and 16 rows, the
        // last one partial.
        for width in [4, 6, 16] {
            for (rs, cs) in [(23, 1), (1, 40), (50, 2)] {
                let data = matrix(40, 23, rs, cs);
                let m = StridedMatrix {
                    data: &data,
                    row_stride: rs,
                    col_stride: cs,
                };
                let (rows, cols) = ((1, 37), (2, 19));
                let mut out = vec![f32::NAN; packed_len(rows.1, cols.1, width)];
                pack_panels(m, rows, cols, width, &mut out);
                for q in 0..rows.1.div_ceil(width) {
                    for p in 0..cols.1 {
                        for i in 0..width {
                            let got = out[q * width * cols.1 + p * width + i];
                            let r = q * width + i;
                            let want = if r < rows.1 {
                                ((rows.0 + r) * 100 + cols.0 + p) as f32
                            } else {
                                0.0
                            };
                            assert_eq!(
                                got, want,
                                "width {width} strides ({rs},{cs}) panel {q} p {p} i {i}"
                            );
                        }
                    }
                }
            }
        }
    }
}
