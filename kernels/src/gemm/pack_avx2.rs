//! Packing contiguous rows into the AVX2 microkernel's micro-panels with AVX2
//! transposes: six rows into a 6-row A panel when A is row-major (Winograd's tile
//! matrices, im2col columns in NHWC, a linear layer's activations), and sixteen rows
//! into a 16-column B panel when op(B) is a transposed row-major matrix (a linear
//! layer's weights, W in x·Wᵀ).
//!
//! The panel wants each column's six values side by side (`panel[p * 6 + i]`), the
//! rows hold them 6 apart. Element by element that is 6 loads and 6 stores per column;
//! here eight columns of the six rows load as six vectors, a transpose turns them into
//! the eight columns' sixes, and those leave in sixteen stores (four values and two,
//! per column). Measured (perf, 1 thread): in the Winograd backward-data of the seed
//! CNN's conv2, packing went from 25% of the time to 12%; `axonal bench gemm`'s median
//! ratio to matrixmultiply from 0.97× to 1.03× (64 × 64 × 576: 0.90× → 1.10×).

/// Columns one step of the transpose handles.
const STEP: usize = 8;

/// Packs `cols` columns of the six rows `rows` (each at least `cols` long) into `panel`
/// (`6 · cols` values, column after column). Returns `false`, packing nothing, where
/// the CPU lacks AVX2. (Six-row panels are the AVX2 microkernel's, so a forced scalar or
/// NEON path never comes here: their panels have 4 and 8 rows.)
pub(super) fn pack_six_rows(rows: [&[f32]; 6], cols: usize, panel: &mut [f32]) -> bool {
    // SAFETY: `transpose_steps` packs six rows as `pack_transposed` requires.
    unsafe { pack_transposed(rows, cols, panel, transpose_steps) }
}

/// [`pack_six_rows`] or [`pack_sixteen_rows`] for a `W`-row panel; `false`, packing
/// nothing, for the widths that have no transposing pack (or without AVX2).
pub(super) fn pack_rows<const W: usize>(rows: [&[f32]; W], cols: usize, panel: &mut [f32]) -> bool {
    match W {
        6 => pack_six_rows(rows[..].try_into().expect("six rows"), cols, panel),
        16 => pack_sixteen_rows(rows[..].try_into().expect("sixteen rows"), cols, panel),
        _ => false,
    }
}

/// Packs `cols` columns of the `W` rows `rows` into a `W`-row panel: whole steps of
/// [`STEP`] columns by `steps`, the rest one value at a time. `false` without AVX2.
///
/// # Safety
/// `steps(rows, c, panel)` must, given AVX2, rows readable for `c` floats (a multiple of
/// [`STEP`]) and a panel writable for `W · c`, touch nothing else.
unsafe fn pack_transposed<const W: usize>(
    rows: [&[f32]; W],
    cols: usize,
    panel: &mut [f32],
    steps: unsafe fn([*const f32; W], usize, *mut f32),
) -> bool {
    if !crate::arch::Isa::Avx2.is_available() {
        return false;
    }
    assert!(
        rows.iter().all(|row| row.len() >= cols) && panel.len() >= W * cols,
        "rows or panel shorter than the columns packed"
    );
    let whole = cols / STEP * STEP;
    // SAFETY: AVX2 is available (checked above); every row holds `whole` ≤ `cols` values
    // and the panel `W · whole` (asserted), which is all `steps` touches (the caller).
    unsafe { steps(rows.map(<[f32]>::as_ptr), whole, panel.as_mut_ptr()) };
    for p in whole..cols {
        for (i, row) in rows.iter().enumerate() {
            panel[p * W + i] = row[p];
        }
    }
    true
}

/// The first `cols` (a multiple of [`STEP`]) columns of the six rows into the panel.
///
/// # Safety
/// AVX2 available; each row readable for `cols` floats; `panel` writable for `6 · cols`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_steps(rows: [*const f32; 6], cols: usize, panel: *mut f32) {
    use std::arch::x86_64::*;
    for p in (0..cols).step_by(STEP) {
        // SAFETY: p + 8 ≤ cols, so each load stays in its row. (Written out: a closure
        // would not inherit this function's target features.)
        let (r0, r1, r2, r3, r4, r5) = unsafe {
            (
                _mm256_loadu_ps(rows[0].add(p)),
                _mm256_loadu_ps(rows[1].add(p)),
                _mm256_loadu_ps(rows[2].add(p)),
                _mm256_loadu_ps(rows[3].add(p)),
                _mm256_loadu_ps(rows[4].add(p)),
                _mm256_loadu_ps(rows[5].add(p)),
            )
        };
        // Pairs of rows interleaved: (r0[j], r1[j]) for j = 0, 1 | 4, 5, and 2, 3 | 6, 7.
        let (t01_lo, t01_hi) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
        let (t23_lo, t23_hi) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
        let (t45_lo, t45_hi) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
        // Rows 0–3 of column j, for j = 0 | 4, 1 | 5, 2 | 6, 3 | 7.
        let first_four = [
            _mm256_shuffle_ps::<0x44>(t01_lo, t23_lo),
            _mm256_shuffle_ps::<0xEE>(t01_lo, t23_lo),
            _mm256_shuffle_ps::<0x44>(t01_hi, t23_hi),
            _mm256_shuffle_ps::<0xEE>(t01_hi, t23_hi),
        ];
        // Rows 4–5 of columns 0, 1 | 4, 5 and 2, 3 | 6, 7.
        let last_two = [t45_lo, t45_hi];
        // SAFETY: the step's 48 floats lie in the panel (6 · cols of them).
        let out = unsafe { panel.add(p * 6) };
        for half in 0..2 {
            for (j, &four) in first_four.iter().enumerate() {
                let four = if half == 0 {
                    _mm256_castps256_ps128(four)
                } else {
                    _mm256_extractf128_ps::<1>(four)
                };
                let pairs = if half == 0 {
                    _mm256_castps256_ps128(last_two[j / 2])
                } else {
                    _mm256_extractf128_ps::<1>(last_two[j / 2])
                };
                let column = out.add((half * 4 + j) * 6);
                // SAFETY: column half·4 + j < 8 of this step: six floats inside the panel.
                unsafe {
                    _mm_storeu_ps(column, four);
                    // Two floats moved as one f64 (movsd / movhpd: no alignment needed).
                    let pairs = _mm_castps_pd(pairs);
                    if j % 2 == 0 {
                        _mm_store_sd(column.add(4) as *mut f64, pairs);
                    } else {
                        _mm_storeh_pd(column.add(4) as *mut f64, pairs);
                    }
                }
            }
        }
    }
}

/// Packs `cols` columns of the sixteen rows `rows` (each at least `cols` long) into
/// `panel` (`16 · cols` values, column after column): per step of eight columns, two
/// 8 × 8 transposes and sixteen whole-vector stores, where a gather takes sixteen
/// scalar loads per column. Returns `false`, packing nothing, where the CPU lacks AVX2
/// (sixteen-wide panels are the AVX2 microkernel's).
pub(super) fn pack_sixteen_rows(rows: [&[f32]; 16], cols: usize, panel: &mut [f32]) -> bool {
    // SAFETY: `transpose_sixteen` packs sixteen rows as `pack_transposed` requires.
    unsafe { pack_transposed(rows, cols, panel, transpose_sixteen) }
}

/// The first `cols` (a multiple of [`STEP`]) columns of the sixteen rows into the panel.
///
/// # Safety
/// AVX2 available; each row readable for `cols` floats; `panel` writable for `16 · cols`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_sixteen(rows: [*const f32; 16], cols: usize, panel: *mut f32) {
    use std::arch::x86_64::*;
    for p in (0..cols).step_by(STEP) {
        for half in 0..2 {
            // SAFETY: p + 8 ≤ cols, so each load stays in its row.
            let r: [__m256; 8] =
                std::array::from_fn(|i| unsafe { _mm256_loadu_ps(rows[half * 8 + i].add(p)) });
            // Pairs of rows interleaved, then fours: u[j] holds rows 0–3 of column j in
            // its low half and of column j + 4 in its high half; u[j + 4] rows 4–7.
            let t: [__m256; 8] = std::array::from_fn(|i| {
                let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
                if i % 2 == 0 {
                    _mm256_unpacklo_ps(a, b)
                } else {
                    _mm256_unpackhi_ps(a, b)
                }
            });
            let u = [
                _mm256_shuffle_ps::<0x44>(t[0], t[2]),
                _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
                _mm256_shuffle_ps::<0x44>(t[1], t[3]),
                _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
                _mm256_shuffle_ps::<0x44>(t[4], t[6]),
                _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
                _mm256_shuffle_ps::<0x44>(t[5], t[7]),
                _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
            ];
            for j in 0..4 {
                let low = _mm256_permute2f128_ps::<0x20>(u[j], u[j + 4]);
                let high = _mm256_permute2f128_ps::<0x31>(u[j], u[j + 4]);
                // SAFETY: columns p + j and p + j + 4 < cols: their eight values of this
                // half lie in the panel (16 · cols floats).
                unsafe {
                    _mm256_storeu_ps(panel.add((p + j) * 16 + half * 8), low);
                    _mm256_storeu_ps(panel.add((p + j + 4) * 16 + half * 8), high);
                }
            }
        }
    }
}

/// Never called: AVX2 is never available off x86_64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn transpose_sixteen(_rows: [*const f32; 16], _cols: usize, _panel: *mut f32) {
    unreachable!("AVX2 is never available off x86_64")
}

/// Never called: AVX2 is never available off x86_64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn transpose_steps(_rows: [*const f32; 6], _cols: usize, _panel: *mut f32) {
    unreachable!("AVX2 is never available off x86_64")
}
