//! The convolution (im2col + GEMM, Winograd, NCHW through NHWC, and the direct one-channel kernels) against the
//! reference, on every ISA path: random descriptors (odd sizes, stride, padding,
//! dilation, groups, 1×1), both layouts, several thread counts; backward-weights through
//! a fused ReLU; bitwise determinism across threads; bad calls are errors.

use axonal_kernels::conv::{
    conv2d_backward_data_on, conv2d_backward_weights_on, conv2d_backward_weights_relu,
    conv2d_backward_weights_relu_on, conv2d_forward_on, Conv2dDesc, ConvEpilogue,
};
use axonal_kernels::eltwise::Activation;
use axonal_kernels::reference;
use axonal_kernels::{Isa, KernelError, Layout, Parallelism};
use proptest::prelude::*;

/// A deterministic stream of values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// Random valid descriptors: small images, kernels up to 4, stride up to 3, padding up
/// to the kernel, dilation up to 2, groups dividing both channel counts.
fn descriptor() -> impl Strategy<Value = Conv2dDesc> {
    (
        // Small batches, and ones that split into several chunks of images.
        prop_oneof![0usize..4, Just(9), Just(17)],
        (1usize..4, 1usize..4, 1usize..4),
        (1usize..10, 1usize..10),
        (1usize..5, 1usize..5),
        (1usize..4, 1usize..4),
        (0usize..4, 0usize..4),
        (1usize..3, 1usize..3),
        prop_oneof![Just(Layout::Nchw), Just(Layout::Nhwc)],
    )
        .prop_filter_map(
            "the dilated kernel must fit in the padded input",
            |(batch, (groups, cpg, kpg), (h, w), (r, s), (sh, sw), (ph, pw), (dh, dw), layout)| {
                let desc = Conv2dDesc::new(batch, groups * cpg, [h, w], groups * kpg, [r, s])
                    .stride([sh, sw])
                    .padding([ph.min(r), pw.min(s)])
                    .dilation([dh, dw])
                    .groups(groups)
                    .layout(layout);
                desc.validate().ok().map(|_| desc)
            },
        )
}

/// Rounding bound of an f32 sum of `terms` products whose magnitudes add up to `scale`.
fn bound(terms: usize, scale: f32) -> f32 {
    4.0 * (terms as f32 + 3.0) * f32::EPSILON * scale + 1e-6
}

fn assert_within(
    what: &str,
    got: &[f32],
    want: &[f32],
    scale: &[f32],
    terms: usize,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for i in 0..got.len() {
        let tol = bound(terms, scale[i]);
        prop_assert!(
            (got[i] - want[i]).abs() <= tol,
            "{}: [{}] got {}, want {}, tolerance {}",
            what,
            i,
            got[i],
            want[i],
            tol
        );
    }
    Ok(())
}

fn check(desc: &Conv2dDesc, isa: Isa, par: Parallelism, seed: u64) -> Result<(), TestCaseError> {
    let [oh, ow] = desc.output_hw().unwrap();
    let x_len = desc.batch * desc.in_channels * desc.input[0] * desc.input[1];
    let y_len = desc.batch * desc.out_channels * oh * ow;
    let x = values(x_len, seed);
    let w = values(desc.weight_len(), seed ^ 1);
    let bias = values(desc.out_channels, seed ^ 2);
    let dy = values(y_len, seed ^ 3);
    let taps = desc.kernel[0] * desc.kernel[1];
    let what = format!("{isa} {par:?} {desc:?}");

    // Forward, with bias and ReLU fused; the reference adds the bias and applies ReLU.
    let mut want = vec![0.0; y_len];
    reference::conv2d_forward(desc, &x, &w, Some(&bias), &mut want).unwrap();
    let mut scale = vec![0.0; y_len];
    reference::conv2d_forward(desc, &abs(&x), &abs(&w), Some(&abs(&bias)), &mut scale).unwrap();
    want.iter_mut().for_each(|v| *v = v.max(0.0));
    let mut y = vec![f32::NAN; y_len];
    let epilogue = ConvEpilogue {
        bias: Some(&bias),
        activation: Activation::Relu,
    };
    conv2d_forward_on(isa, desc, &x, &w, epilogue, &mut y, par).unwrap();
    assert_within(
        &format!("{what}: y"),
        &y,
        &want,
        &scale,
        desc.channels_per_group() * taps,
    )?;

    // Backward-data.
    let mut want = vec![0.0; x_len];
    reference::conv2d_backward_data(desc, &dy, &w, &mut want).unwrap();
    let mut scale = vec![0.0; x_len];
    reference::conv2d_backward_data(desc, &abs(&dy), &abs(&w), &mut scale).unwrap();
    let mut dx = vec![f32::NAN; x_len];
    conv2d_backward_data_on(isa, desc, &dy, &w, &mut dx, par).unwrap();
    assert_within(
        &format!("{what}: dx"),
        &dx,
        &want,
        &scale,
        desc.out_channels_per_group() * taps,
    )?;

    // Backward-weights and bias.
    let mut want_dw = vec![0.0; w.len()];
    let mut want_db = vec![0.0; desc.out_channels];
    reference::conv2d_backward_weights(desc, &x, &dy, &mut want_dw, Some(&mut want_db)).unwrap();
    let mut scale_dw = vec![0.0; w.len()];
    let mut scale_db = vec![0.0; desc.out_channels];
    reference::conv2d_backward_weights(
        desc,
        &abs(&x),
        &abs(&dy),
        &mut scale_dw,
        Some(&mut scale_db),
    )
    .unwrap();
    let mut dw = vec![f32::NAN; w.len()];
    let mut db = vec![f32::NAN; desc.out_channels];
    conv2d_backward_weights_on(isa, desc, &x, &dy, &mut dw, Some(&mut db), par).unwrap();
    let terms = desc.batch * oh * ow;
    assert_within(&format!("{what}: dw"), &dw, &want_dw, &scale_dw, terms)?;
    assert_within(&format!("{what}: db"), &db, &want_db, &scale_db, terms)?;
    Ok(())
}

/// [`check`] on every ISA path, sequential, and on the detected path with `threads`.
fn check_everywhere(desc: &Conv2dDesc, seed: u64, threads: usize) -> Result<(), TestCaseError> {
    for isa in Isa::available() {
        check(desc, isa, Parallelism::Sequential, seed)?;
    }
    check(desc, Isa::detected(), Parallelism::Threads(threads), seed)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_isa_matches_the_reference(desc in descriptor(), seed in any::<u64>()) {
        for isa in Isa::available() {
            check(&desc, isa, Parallelism::Sequential, seed)?;
        }
    }

    #[test]
    fn threads_match_the_reference(desc in descriptor(), seed in any::<u64>()) {
        check(&desc, Isa::detected(), Parallelism::Threads(3), seed)?;
    }

    /// One-channel NHWC convolutions take the direct kernels: output channel counts
    /// around and beyond the 32-channel block, every kernel size they handle.
    #[test]
    fn single_channel_nhwc_matches_the_reference(
        desc in single_channel_descriptor(),
        seed in any::<u64>(),
        threads in 1usize..4,
    ) {
        check_everywhere(&desc, seed, threads)?;
    }

    #[test]
    fn wide_nchw_matches_the_reference(
        desc in wide_nchw_descriptor(),
        seed in any::<u64>(),
        threads in 1usize..4,
    ) {
        check_everywhere(&desc, seed, threads)?;
    }

    #[test]
    fn winograd_matches_the_reference(
        desc in winograd_descriptor(),
        seed in any::<u64>(),
        threads in 1usize..4,
    ) {
        check_everywhere(&desc, seed, threads)?;
    }
}

/// 3×3 stride-1 convolutions with at least 16 channels on each side: the Winograd path
/// (where its 4×4 tiles serve the output well), in both layouts, with outputs that end
/// in partial tiles (11, 15) or in strips computed beside the tiles (9, 13), every
/// padding it takes, and channel counts that are not multiples of the vector width.
fn winograd_descriptor() -> impl Strategy<Value = Conv2dDesc> {
    let side = prop::sample::select(vec![4usize, 7, 8, 9, 11, 12, 13, 14, 15, 16]);
    (
        prop_oneof![0usize..4, Just(9)],
        16usize..41,
        16usize..41,
        (side.clone(), side),
        (0usize..3, 0usize..3),
        prop_oneof![Just(Layout::Nchw), Just(Layout::Nhwc)],
    )
        .prop_filter_map(
            "the kernel must fit in the padded input",
            |(batch, c, k, (oh, ow), (ph, pw), layout)| {
                let (h, w) = ((oh + 2).checked_sub(2 * ph)?, (ow + 2).checked_sub(2 * pw)?);
                let desc = Conv2dDesc::new(batch, c, [h, w], k, [3, 3])
                    .padding([ph, pw])
                    .layout(layout);
                desc.validate().ok().map(|_| desc)
            },
        )
}

/// NCHW layers with 16+ input channels and small images, which run through the NHWC
/// path where Winograd does not take them: any kernel, stride, padding and dilation.
fn wide_nchw_descriptor() -> impl Strategy<Value = Conv2dDesc> {
    (
        prop_oneof![0usize..4, Just(9)],
        16usize..25,
        1usize..20,
        (1usize..10, 1usize..10),
        (1usize..4, 1usize..4),
        (1usize..3, 0usize..3, 1usize..3),
    )
        .prop_filter_map(
            "the dilated kernel must fit in the padded input",
            |(batch, c, k, (h, w), (r, s), (stride, pad, dilation))| {
                let desc = Conv2dDesc::new(batch, c, [h, w], k, [r, s])
                    .stride([stride, stride])
                    .padding([pad.min(r), pad.min(s)])
                    .dilation([dilation, dilation]);
                desc.validate().ok().map(|_| desc)
            },
        )
}

/// One input channel, NHWC, kernels of 1, 4, 9, 16 and 25 taps (and some the direct
/// kernels leave to im2col), up to 70 output channels.
fn single_channel_descriptor() -> impl Strategy<Value = Conv2dDesc> {
    (
        // Batches past 8 images: the weight gradient sums parts of 8 images, then the
        // parts.
        prop_oneof![0usize..5, 9usize..20],
        1usize..71,
        (1usize..12, 1usize..12),
        prop_oneof![
            Just([1, 1]),
            Just([2, 2]),
            Just([3, 3]),
            Just([4, 4]),
            Just([5, 5]),
            Just([1, 4]),
            Just([3, 2])
        ],
        (1usize..3, 0usize..3, 1usize..3),
    )
        .prop_filter_map(
            "the dilated kernel must fit in the padded input",
            |(batch, k, (h, w), kernel, (stride, pad, dilation))| {
                let desc = Conv2dDesc::new(batch, 1, [h, w], k, kernel)
                    .stride([stride, stride])
                    .padding([pad.min(kernel[0]), pad.min(kernel[1])])
                    .dilation([dilation, dilation])
                    .layout(Layout::Nhwc);
                desc.validate().ok().map(|_| desc)
            },
        )
}

/// Every output of every pass, as bits.
fn all_passes(desc: &Conv2dDesc, par: Parallelism) -> Vec<u32> {
    let [oh, ow] = desc.output_hw().unwrap();
    let x = values(
        desc.batch * desc.in_channels * desc.input[0] * desc.input[1],
        5,
    );
    let w = values(desc.weight_len(), 6);
    let dy = values(desc.batch * desc.out_channels * oh * ow, 7);
    let isa = Isa::detected();
    let mut y = vec![0.0; dy.len()];
    conv2d_forward_on(isa, desc, &x, &w, ConvEpilogue::default(), &mut y, par).unwrap();
    let mut dx = vec![0.0; x.len()];
    conv2d_backward_data_on(isa, desc, &dy, &w, &mut dx, par).unwrap();
    let mut dw = vec![0.0; w.len()];
    let mut db = vec![0.0; desc.out_channels];
    conv2d_backward_weights_on(isa, desc, &x, &dy, &mut dw, Some(&mut db), par).unwrap();
    [y, dx, dw, db]
        .concat()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn results_are_bitwise_identical_for_1_2_and_3_threads() {
    let cases = [
        // Many chunks of images: threads take chunks.
        Conv2dDesc::new(9, 8, [24, 24], 16, [3, 3]),
        Conv2dDesc::new(7, 8, [20, 20], 8, [3, 3]).layout(Layout::Nhwc),
        // One image: threads split the GEMMs.
        Conv2dDesc::new(1, 32, [13, 13], 64, [3, 3]).padding([1, 1]),
        Conv2dDesc::new(3, 16, [9, 9], 24, [1, 1]).layout(Layout::Nhwc),
        Conv2dDesc::new(4, 8, [10, 10], 8, [3, 3])
            .groups(8)
            .stride([2, 2])
            .padding([1, 1]),
        // 3×3 stride 1 with 16+ channels: Winograd, blocks of images, both layouts.
        Conv2dDesc::new(5, 16, [11, 11], 24, [3, 3])
            .padding([1, 1])
            .layout(Layout::Nhwc),
        Conv2dDesc::new(5, 24, [11, 11], 16, [3, 3]).padding([1, 1]),
        // Winograd with the edge strips beside the tiles: the backward-data of a 13×13
        // input; in the second, the forward's 13×13 output too.
        Conv2dDesc::new(5, 16, [13, 13], 24, [3, 3]).layout(Layout::Nhwc),
        Conv2dDesc::new(5, 24, [13, 13], 16, [3, 3]).padding([1, 1]),
        // One input channel in NHWC: the direct kernels (the weight gradient in parts of
        // 8 images: one part, then three).
        Conv2dDesc::new(6, 1, [28, 28], 32, [3, 3]).layout(Layout::Nhwc),
        Conv2dDesc::new(19, 1, [12, 12], 16, [3, 3]).layout(Layout::Nhwc),
        Conv2dDesc::new(2, 1, [9, 7], 37, [5, 5])
            .padding([2, 2])
            .layout(Layout::Nhwc),
    ];
    for desc in cases {
        let one = all_passes(&desc, Parallelism::Sequential);
        for threads in [1, 2, 3] {
            assert!(
                one == all_passes(&desc, Parallelism::Threads(threads)),
                "{desc:?} with {threads} threads"
            );
        }
    }
}

#[test]
fn bad_calls_are_errors_not_panics() {
    let desc = Conv2dDesc::new(2, 3, [5, 5], 4, [3, 3]);
    let (x, w) = (vec![0.0; 2 * 3 * 25], vec![0.0; 4 * 3 * 9]);
    let mut y = vec![0.0; 2 * 4 * 9];
    let isa = Isa::detected();
    let seq = Parallelism::Sequential;
    let plain = ConvEpilogue::default();
    assert!(matches!(
        conv2d_forward_on(isa, &desc, &x[1..], &w, plain, &mut y, seq),
        Err(KernelError::ShapeMismatch { .. })
    ));
    assert!(conv2d_forward_on(isa, &desc, &x, &w[1..], plain, &mut y, seq).is_err());
    assert!(conv2d_forward_on(isa, &desc, &x, &w, plain, &mut y[1..], seq).is_err());
    let short_bias = [0.0; 3];
    let bad_bias = ConvEpilogue {
        bias: Some(&short_bias),
        ..plain
    };
    assert!(conv2d_forward_on(isa, &desc, &x, &w, bad_bias, &mut y, seq).is_err());
    assert!(conv2d_forward_on(isa, &desc.stride([0, 1]), &x, &w, plain, &mut y, seq).is_err());
    assert!(conv2d_forward_on(isa, &desc.groups(2), &x, &w, plain, &mut y, seq).is_err());
    assert!(conv2d_forward_on(isa, &desc, &x, &w, plain, &mut y, Parallelism::Threads(0)).is_err());
    let mut dx = vec![0.0; x.len()];
    assert!(conv2d_backward_data_on(isa, &desc, &y[1..], &w, &mut dx, seq).is_err());
    let mut dw = vec![0.0; w.len()];
    let mut short_db = vec![0.0; 3];
    assert!(
        conv2d_backward_weights_on(isa, &desc, &x, &y, &mut dw, Some(&mut short_db), seq).is_err()
    );
    assert!(Conv2dDesc::new(1, 1, [2, 2], 1, [3, 3])
        .workspace_len()
        .is_err());
    assert_eq!(
        Conv2dDesc::new(1, 4, [5, 5], 2, [1, 1])
            .workspace_len()
            .unwrap(),
        0
    );
    // Both images in one chunk: their column matrices (27 rows × 9 pixels each), plus
    // the output regrouped for one GEMM (4 channels × 9 pixels each).
    assert_eq!(desc.workspace_len().unwrap(), 2 * 27 * 9 + 2 * 4 * 9);
    // Winograd forward and backward-weights (4×4 outputs: one tile; the backward-data's
    // 6×6 fills too little of its 8×8 tiles and stays with im2col): one image's 36
    // transformed points of 16 + 16 channels, and the 36 transformed 16 × 16 filter
    // matrices — more than im2col's 144 × 16 columns; in NCHW, plus the image (the
    // larger of input and output) moved to NHWC, and for the backward-data, which runs
    // through the NHWC path, its input and output moved (16 × 36 + 16 × 16).
    let winograd = Conv2dDesc::new(1, 16, [6, 6], 16, [3, 3]).layout(Layout::Nhwc);
    assert_eq!(winograd.workspace_len().unwrap(), 36 * (16 + 16 + 16 * 16));
    let nchw = winograd.layout(Layout::Nchw);
    assert_eq!(
        nchw.workspace_len().unwrap(),
        36 * (16 + 16 + 16 * 16) + 16 * 36 + (16 * 36 + 16 * 16)
    );
    // A 13×13 input: the forward's 11×11 output in 9 covering tiles; the backward-data's
    // 13×13 output in 9 tiles inside it, plus 25 edge pixels, each a 3×3 window of 16
    // channels and 16 outputs, and the 16 × 16 filters as that GEMM reads them.
    let strips = Conv2dDesc::new(1, 16, [13, 13], 16, [3, 3]).layout(Layout::Nhwc);
    let tiles = 36 * (9 * (16 + 16) + 16 * 16);
    assert_eq!(
        strips.workspace_len().unwrap(),
        tiles + 25 * (9 * 16 + 16) + 9 * 16 * 16
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Backward-weights through a fused ReLU equals masking dy by y > 0 first.
    #[test]
    fn relu_backward_weights_match_masking_first(
        desc in prop_oneof![single_channel_descriptor(), descriptor()],
        seed in any::<u64>(),
    ) {
        let [oh, ow] = desc.output_hw().unwrap();
        let x = values(desc.batch * desc.in_channels * desc.input[0] * desc.input[1], seed);
        let y_len = desc.batch * desc.out_channels * oh * ow;
        // A ReLU output: zero about half the time.
        let y: Vec<f32> = values(y_len, seed ^ 1).iter().map(|v| v.max(0.0)).collect();
        let dy = values(y_len, seed ^ 2);
        let dz: Vec<f32> = dy.iter().zip(&y).map(|(&d, &v)| if v > 0.0 { d } else { 0.0 }).collect();
        let mut want_dw = vec![0.0; desc.weight_len()];
        let mut want_db = vec![0.0; desc.out_channels];
        reference::conv2d_backward_weights(&desc, &x, &dz, &mut want_dw, Some(&mut want_db)).unwrap();
        let mut scale_dw = vec![0.0; desc.weight_len()];
        let mut scale_db = vec![0.0; desc.out_channels];
        reference::conv2d_backward_weights(&desc, &abs(&x), &abs(&dz), &mut scale_dw, Some(&mut scale_db)).unwrap();
        let terms = desc.batch * oh * ow;
        for isa in Isa::available() {
            for par in [Parallelism::Sequential, Parallelism::Threads(2)] {
                let mut dw = vec![f32::NAN; desc.weight_len()];
                let mut db = vec![f32::NAN; desc.out_channels];
                conv2d_backward_weights_relu_on(isa, &desc, &x, &y, &dy, &mut dw, Some(&mut db), par).unwrap();
                assert_within(&format!("{isa} {desc:?}: dw"), &dw, &want_dw, &scale_dw, terms)?;
                assert_within(&format!("{isa} {desc:?}: db"), &db, &want_db, &scale_db, terms)?;
            }
        }
        let mut dw = vec![0.0; desc.weight_len()];
        prop_assert!(conv2d_backward_weights_relu(&desc, &x, &y[..y_len.saturating_sub(1)], &dy, &mut dw, None, Parallelism::Sequential).is_err() || y_len == 0);
    }
}
