//! The fast pooling kernels against the reference: every ISA path, both layouts, both
//! `count_include_pad`, random windows (overlapping, gapped, padded, 1 × 1, global),
//! data with ties, NaN and infinities; bitwise agreement across paths and thread
//! counts; errors instead of panics on bad calls.

use axonal_kernels::pool::{
    avg_pool2d_backward_on, avg_pool2d_forward_on, global_avg_pool2d_backward_on,
    global_avg_pool2d_forward_on, max_pool2d_backward, max_pool2d_backward_on, max_pool2d_forward,
    max_pool2d_forward_on, Pool2dDesc,
};
use axonal_kernels::{reference, Isa, KernelError, Layout, Parallelism};
use proptest::prelude::*;

/// What the input values look like.
#[derive(Debug, Clone, Copy)]
enum Data {
    /// Uniform in [-1, 1).
    Plain,
    /// Five levels and both zeros: many ties inside a window.
    Ties,
    /// Uniform, with NaN, +inf and -inf sprinkled in.
    Special,
}

/// A deterministic stream of values of kind `data`.
fn values(len: usize, seed: u64, data: Data) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let uniform = (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
            match data {
                Data::Plain => uniform,
                Data::Ties => [-2.0, -1.0, -0.0, 0.0, 1.0, 2.0][(state % 6) as usize],
                Data::Special => match state % 11 {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    _ => uniform,
                },
            }
        })
        .collect()
}

/// One axis of a window: (input, kernel, stride, padding) with the window fitting the
/// padded input. Strides below, at and above the kernel, often the common 2 / 2 and
/// 3 / 2 padded windows, which have their own vector kernels; inputs long enough for
/// the 8-lane blocks.
fn axis() -> impl Strategy<Value = (usize, usize, usize, usize)> {
    let window = prop_oneof![
        2 => Just((2, 2, 0)),
        1 => Just((3, 2, 1)),
        4 => (1usize..=5, 1usize..=4, 0usize..=2)
            .prop_map(|(kernel, stride, pad)| (kernel, stride, pad.min(kernel / 2))),
    ];
    (window, 0usize..=36).prop_map(|((kernel, stride, padding), extra)| {
        let input = kernel.saturating_sub(2 * padding).max(1) + extra;
        (input, kernel, stride, padding)
    })
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![Just(Layout::Nchw), Just(Layout::Nhwc)]
}

fn data() -> impl Strategy<Value = Data> {
    prop_oneof![Just(Data::Plain), Just(Data::Ties), Just(Data::Special)]
}

/// Channel counts around the 4- and 8-lane blocks.
fn channels() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![1, 2, 3, 4, 5, 8, 9, 12, 16, 19])
}

fn descriptor() -> impl Strategy<Value = Pool2dDesc> {
    let windowed = (0usize..=3, channels(), axis(), axis(), layout()).prop_map(
        |(batch, channels, (h, kh, sh, ph), (w, kw, sw, pw), layout)| {
            Pool2dDesc::new(batch, channels, [h, w], [kh, kw])
                .stride([sh, sw])
                .padding([ph, pw])
                .layout(layout)
        },
    );
    let global = (1usize..=3, channels(), 1usize..=12, 1usize..=12, layout()).prop_map(
        |(batch, channels, h, w, layout)| {
            Pool2dDesc::global(batch, channels, [h, w]).layout(layout)
        },
    );
    prop_oneof![4 => windowed, 1 => global]
}

fn is_global(desc: &Pool2dDesc) -> bool {
    desc.kernel == desc.input && desc.padding == [0, 0]
}

const PARS: [Parallelism; 2] = [Parallelism::Sequential, Parallelism::Threads(3)];

/// Equal bits, or both NaN (NaN payloads are not part of the contract).
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn check_same(what: &str, got: &[f32], want: &[f32]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        prop_assert!(same(g, w), "{}[{}]: got {:e}, want {:e}", what, i, g, w);
    }
    Ok(())
}

/// `got` within `terms` rounding errors of `want`, scaled by `magnitude` (the same
/// computation on absolute values); non-finite values must match exactly.
fn check_close(
    what: &str,
    got: &[f32],
    want: &[f32],
    magnitude: &[f32],
    terms: usize,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (i, ((&g, &w), &m)) in got.iter().zip(want).zip(magnitude).enumerate() {
        if !w.is_finite() {
            prop_assert!(same(g, w), "{}[{}]: got {:e}, want {:e}", what, i, g, w);
            continue;
        }
        let tolerance = 2.0 * (terms as f32 + 2.0) * f32::EPSILON * m;
        prop_assert!(
            (g - w).abs() <= tolerance,
            "{}[{}]: got {:e}, want {:e}, tolerance {:e}",
            what,
            i,
            g,
            w,
            tolerance
        );
    }
    Ok(())
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// Every result of every pooling function of one call, on one path and thread count.
#[derive(Debug)]
struct Run {
    max_y: Vec<f32>,
    argmax: Vec<u32>,
    max_dx: Vec<f32>,
    /// (y, dx) with `count_include_pad` false, then true.
    avg: [(Vec<f32>, Vec<f32>); 2],
    global: Option<(Vec<f32>, Vec<f32>)>,
}

fn run(isa: Isa, par: Parallelism, desc: &Pool2dDesc, x: &[f32], dy: &[f32]) -> Run {
    let (xd, yd) = (desc.input_dims(), desc.output_dims().unwrap());
    let (mut y, mut dx) = (vec![f32::NAN; yd.len()], vec![f32::NAN; xd.len()]);
    let mut argmax = vec![u32::MAX; yd.len()];
    max_pool2d_forward_on(isa, desc, x, &mut y, &mut argmax, par).unwrap();
    max_pool2d_backward_on(isa, desc, dy, &argmax, &mut dx, par).unwrap();
    let (max_y, max_dx) = (y.clone(), dx.clone());
    let mut avg = |include| {
        avg_pool2d_forward_on(isa, desc, include, x, &mut y, par).unwrap();
        avg_pool2d_backward_on(isa, desc, include, dy, &mut dx, par).unwrap();
        (y.clone(), dx.clone())
    };
    let avg = [avg(false), avg(true)];
    let global = is_global(desc).then(|| {
        global_avg_pool2d_forward_on(isa, desc, x, &mut y, par).unwrap();
        global_avg_pool2d_backward_on(isa, desc, dy, &mut dx, par).unwrap();
        (y.clone(), dx.clone())
    });
    Run {
        max_y,
        argmax,
        max_dx,
        avg,
        global,
    }
}

/// The reference results and the magnitudes that bound their rounding.
struct Expected {
    run: Run,
    max_dx_mag: Vec<f32>,
    avg_mag: [(Vec<f32>, Vec<f32>); 2],
    global_mag: Option<(Vec<f32>, Vec<f32>)>,
}

fn expected(desc: &Pool2dDesc, x: &[f32], dy: &[f32]) -> Expected {
    let (xd, yd) = (desc.input_dims(), desc.output_dims().unwrap());
    let (mut y, mut dx) = (vec![0.0; yd.len()], vec![0.0; xd.len()]);
    let mut argmax = vec![0; yd.len()];
    reference::max_pool2d_forward(desc, x, &mut y, &mut argmax).unwrap();
    reference::max_pool2d_backward(desc, dy, &argmax, &mut dx).unwrap();
    let (max_y, max_dx) = (y.clone(), dx.clone());
    let (x_abs, dy_abs) = (abs(x), abs(dy));
    reference::max_pool2d_backward(desc, &dy_abs, &argmax, &mut dx).unwrap();
    let max_dx_mag = dx.clone();
    let mut avg = |include, x: &[f32], dy: &[f32]| {
        reference::avg_pool2d_forward(desc, include, x, &mut y).unwrap();
        reference::avg_pool2d_backward(desc, include, dy, &mut dx).unwrap();
        (y.clone(), dx.clone())
    };
    let avg_run = [avg(false, x, dy), avg(true, x, dy)];
    let avg_mag = [avg(false, &x_abs, &dy_abs), avg(true, &x_abs, &dy_abs)];
    let mut global = |x: &[f32], dy: &[f32]| {
        reference::global_avg_pool2d_forward(desc, x, &mut y).unwrap();
        reference::global_avg_pool2d_backward(desc, dy, &mut dx).unwrap();
        (y.clone(), dx.clone())
    };
    let global_run = is_global(desc).then(|| global(x, dy));
    let global_mag = is_global(desc).then(|| global(&x_abs, &dy_abs));
    Expected {
        run: Run {
            max_y,
            argmax,
            max_dx,
            avg: avg_run,
            global: global_run,
        },
        max_dx_mag,
        avg_mag,
        global_mag,
    }
}

/// Every path and thread count against the reference; then against each other: bit
/// for bit, except the NCHW global sums, which each path splits its own way.
fn check_case(desc: &Pool2dDesc, data: Data, seed: u64) -> Result<(), TestCaseError> {
    let (xd, yd) = (desc.input_dims(), desc.output_dims().unwrap());
    let x = values(xd.len(), seed, data);
    let dy = values(yd.len(), seed ^ 0x5555, data);
    let want = expected(desc, &x, &dy);
    let window = desc.kernel[0] * desc.kernel[1];
    let mut baseline: Option<Run> = None;
    for isa in Isa::available() {
        for par in PARS {
            let got = run(isa, par, desc, &x, &dy);
            let at = |what: &str| format!("{isa} {par:?} {what}");
            check_same(&at("max y"), &got.max_y, &want.run.max_y)?;
            prop_assert_eq!(&got.argmax, &want.run.argmax, "{}", at("argmax"));
            let (max_dx, mag) = (&want.run.max_dx, &want.max_dx_mag);
            check_close(&at("max dx"), &got.max_dx, max_dx, mag, window)?;
            for (i, include) in [false, true].into_iter().enumerate() {
                let ((y, dx), (y_mag, dx_mag)) = (&want.run.avg[i], &want.avg_mag[i]);
                let what = |t: &str| at(&format!("avg (include pad {include}) {t}"));
                check_close(&what("y"), &got.avg[i].0, y, y_mag, window)?;
                check_close(&what("dx"), &got.avg[i].1, dx, dx_mag, window)?;
            }
            if let (Some((y, dx)), Some((y_mag, dx_mag)), Some((got_y, got_dx))) =
                (&want.run.global, &want.global_mag, &got.global)
            {
                check_close(&at("global y"), got_y, y, y_mag, xd.h * xd.w)?;
                check_close(&at("global dx"), got_dx, dx, dx_mag, 1)?;
            }
            match &baseline {
                None => baseline = Some(got),
                Some(base) => {
                    let vs = |what: &str| format!("{} vs scalar sequential", at(what));
                    check_same(&vs("max y"), &got.max_y, &base.max_y)?;
                    check_same(&vs("max dx"), &got.max_dx, &base.max_dx)?;
                    for i in 0..2 {
                        check_same(&vs("avg y"), &got.avg[i].0, &base.avg[i].0)?;
                        check_same(&vs("avg dx"), &got.avg[i].1, &base.avg[i].1)?;
                    }
                    if let (Some((got_y, got_dx)), Some((base_y, base_dx))) =
                        (&got.global, &base.global)
                    {
                        if desc.layout == Layout::Nhwc {
                            check_same(&vs("global y"), got_y, base_y)?;
                        }
                        check_same(&vs("global dx"), got_dx, base_dx)?;
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_path_matches_the_reference(desc in descriptor(), data in data(), seed in any::<u64>()) {
        check_case(&desc, data, seed)?;
    }
}

/// The benchmark's shapes (smaller batches): the 8-lane NCHW blocks, the pair-shuffle
/// backward, narrow rows, padded 3 × 3 windows and the global pool.
#[test]
fn benchmark_shapes_match_the_reference() {
    let cases = [
        Pool2dDesc::new(4, 32, [26, 26], [2, 2]),
        Pool2dDesc::new(4, 32, [26, 26], [2, 2]).layout(Layout::Nhwc),
        Pool2dDesc::new(4, 64, [11, 11], [2, 2]),
        Pool2dDesc::new(2, 64, [32, 32], [3, 3])
            .stride([2, 2])
            .padding([1, 1]),
        Pool2dDesc::new(2, 64, [32, 32], [3, 3])
            .stride([2, 2])
            .padding([1, 1])
            .layout(Layout::Nhwc),
        Pool2dDesc::global(4, 128, [8, 8]),
        Pool2dDesc::global(4, 128, [8, 8]).layout(Layout::Nhwc),
    ];
    for (i, desc) in cases.iter().enumerate() {
        for data in [Data::Plain, Data::Ties, Data::Special] {
            check_case(desc, data, i as u64).unwrap();
        }
    }
}

/// Every window on tiny planes: windows wider than the input, whose padding the vector
/// blocks could mistake for real positions of a neighbouring row.
#[test]
fn every_window_on_tiny_planes_matches_the_reference() {
    for (h, w) in [(1, 1), (1, 3), (2, 2), (3, 1), (2, 5), (4, 3)] {
        for kernel in 1..=5 {
            for stride in 1..=3 {
                for padding in 0..=kernel / 2 {
                    if kernel > h.min(w) + 2 * padding {
                        continue;
                    }
                    for layout in [Layout::Nchw, Layout::Nhwc] {
                        let desc = Pool2dDesc::new(2, 3, [h, w], [kernel, kernel])
                            .stride([stride, stride])
                            .padding([padding, padding])
                            .layout(layout);
                        for data in [Data::Plain, Data::Ties] {
                            check_case(&desc, data, (h * 31 + w) as u64).unwrap();
                        }
                    }
                }
            }
        }
    }
}

/// Ties, NaN and -inf at every lane of a row wide enough for the 8-lane blocks.
#[test]
fn ties_nan_and_infinities_follow_pytorch() {
    let desc = Pool2dDesc::new(1, 1, [2, 32], [2, 2]);
    let mut x = vec![1.0f32; 64];
    // Window j covers x[2j], x[2j+1], x[32+2j], x[33+2j].
    for j in 0..16 {
        let (a, b, c, d) = (2 * j, 2 * j + 1, 32 + 2 * j, 33 + 2 * j);
        match j % 4 {
            0 => {}                                   // a four-way tie: the first position wins
            1 => (x[b], x[d]) = (f32::NAN, f32::NAN), // the last NaN wins
            2 => {
                (x[a], x[b], x[c], x[d]) = (
                    f32::NEG_INFINITY,
                    f32::NEG_INFINITY,
                    f32::NEG_INFINITY,
                    f32::NEG_INFINITY,
                )
            }
            _ => (x[c], x[d]) = (5.0, 5.0), // a tie in the second row: first of the two
        }
    }
    let mut want_y = [0.0f32; 16];
    let mut want_am = [0u32; 16];
    reference::max_pool2d_forward(&desc, &x, &mut want_y, &mut want_am).unwrap();
    assert_eq!(&want_am[..4], [0, 35, 4, 38]);
    for isa in Isa::available() {
        let (mut y, mut am) = ([0.0f32; 16], [0u32; 16]);
        max_pool2d_forward_on(isa, &desc, &x, &mut y, &mut am, Parallelism::Sequential).unwrap();
        assert_eq!(am, want_am, "{isa}");
        assert!(
            y.iter().zip(&want_y).all(|(&a, &b)| same(a, b)),
            "{isa}: {y:?}"
        );
    }
}

#[test]
fn results_are_bitwise_identical_for_1_to_4_threads() {
    let cases = [
        Pool2dDesc::new(3, 40, [26, 27], [2, 2]),
        Pool2dDesc::new(3, 40, [26, 27], [3, 3])
            .stride([1, 2])
            .padding([1, 1]),
        Pool2dDesc::new(3, 40, [26, 27], [3, 2])
            .stride([2, 1])
            .padding([1, 0])
            .layout(Layout::Nhwc),
        Pool2dDesc::global(5, 40, [9, 7]),
        Pool2dDesc::global(5, 40, [9, 7]).layout(Layout::Nhwc),
    ];
    for desc in cases {
        let (xd, yd) = (desc.input_dims(), desc.output_dims().unwrap());
        let x = values(xd.len(), 7, Data::Plain);
        let dy = values(yd.len(), 8, Data::Plain);
        for isa in Isa::available() {
            let one = run(isa, Parallelism::Sequential, &desc, &x, &dy);
            for threads in 1..=4 {
                let many = run(isa, Parallelism::Threads(threads), &desc, &x, &dy);
                let bits = |r: &Run| {
                    let mut all: Vec<u32> = r.max_y.iter().map(|v| v.to_bits()).collect();
                    all.extend(&r.argmax);
                    for v in [
                        &r.max_dx,
                        &r.avg[0].0,
                        &r.avg[0].1,
                        &r.avg[1].0,
                        &r.avg[1].1,
                    ] {
                        all.extend(v.iter().map(|v| v.to_bits()));
                    }
                    if let Some((y, dx)) = &r.global {
                        all.extend(y.iter().chain(dx).map(|v| v.to_bits()));
                    }
                    all
                };
                assert!(
                    bits(&one) == bits(&many),
                    "{isa} {desc:?} {threads} threads"
                );
            }
        }
    }
}

#[test]
fn bad_calls_are_errors_not_panics() {
    let isa = Isa::detected();
    let seq = Parallelism::Sequential;
    let desc = Pool2dDesc::new(1, 2, [4, 4], [2, 2]); // x 32, y 8
    let (x, dy) = (vec![0.0; 32], vec![1.0; 8]);
    let (mut y, mut am, mut dx) = (vec![0.0; 8], vec![0u32; 8], vec![0.0; 32]);
    let is_shape = |r| matches!(r, Err(KernelError::ShapeMismatch { .. }));
    let is_invalid = |r| matches!(r, Err(KernelError::InvalidParameter { .. }));

    assert!(is_shape(max_pool2d_forward_on(
        isa,
        &desc,
        &x[1..],
        &mut y,
        &mut am,
        seq
    )));
    assert!(is_shape(max_pool2d_forward_on(
        isa,
        &desc,
        &x,
        &mut y[1..],
        &mut am,
        seq
    )));
    assert!(is_shape(max_pool2d_forward_on(
        isa,
        &desc,
        &x,
        &mut y,
        &mut am[1..],
        seq
    )));
    max_pool2d_forward_on(isa, &desc, &x, &mut y, &mut am, seq).unwrap();
    assert!(is_shape(max_pool2d_backward_on(
        isa,
        &desc,
        &dy[1..],
        &am,
        &mut dx,
        seq
    )));
    assert!(is_shape(max_pool2d_backward_on(
        isa,
        &desc,
        &dy,
        &am[1..],
        &mut dx,
        seq
    )));
    assert!(is_shape(max_pool2d_backward_on(
        isa,
        &desc,
        &dy,
        &am,
        &mut dx[1..],
        seq
    )));
    for include in [false, true] {
        assert!(is_shape(avg_pool2d_forward_on(
            isa,
            &desc,
            include,
            &x[1..],
            &mut y,
            seq
        )));
        assert!(is_shape(avg_pool2d_forward_on(
            isa,
            &desc,
            include,
            &x,
            &mut y[1..],
            seq
        )));
        assert!(is_shape(avg_pool2d_backward_on(
            isa,
            &desc,
            include,
            &dy[1..],
            &mut dx,
            seq
        )));
        assert!(is_shape(avg_pool2d_backward_on(
            isa,
            &desc,
            include,
            &dy,
            &mut dx[1..],
            seq
        )));
    }

    // Argmax outside the plane, or inside it but outside its window, on every path and
    // layout (the NCHW 2 × 2 rows have their own vector kernel).
    for layout in [Layout::Nchw, Layout::Nhwc] {
        let desc = desc.layout(layout);
        for path in Isa::available() {
            max_pool2d_forward_on(path, &desc, &x, &mut y, &mut am, seq).unwrap();
            for (at, bad) in [(0, 16), (3, u32::MAX), (5, 0), (7, 9)] {
                let mut bad_am = am.clone();
                bad_am[at] = bad;
                let r = max_pool2d_backward_on(path, &desc, &dy, &bad_am, &mut dx, seq);
                assert!(is_invalid(r), "{path} {layout:?} argmax[{at}] = {bad}");
            }
            let mut good = vec![0.0; 32];
            max_pool2d_backward_on(path, &desc, &dy, &am, &mut good, seq).unwrap();
        }
    }
    let wide = Pool2dDesc::new(1, 1, [2, 40], [2, 2]); // a row of 20 outputs: 8-lane blocks
    let mut wide_am = vec![0u32; 20];
    let mut wide_y = vec![0.0; 20];
    max_pool2d_forward(&wide, &[0.0; 80], &mut wide_y, &mut wide_am, seq).unwrap();
    wide_am[17] = 40; // row 1, column 0: in the plane, not in window 17
    let r = max_pool2d_backward(&wide, &[1.0; 20], &wide_am, &mut [0.0; 80], seq);
    assert!(is_invalid(r));

    let bad = desc.stride([0, 2]);
    assert!(max_pool2d_forward_on(isa, &bad, &x, &mut y, &mut am, seq).is_err());
    assert!(max_pool2d_backward_on(isa, &bad, &dy, &am, &mut dx, seq).is_err());
    assert!(avg_pool2d_forward_on(isa, &bad, true, &x, &mut y, seq).is_err());
    assert!(avg_pool2d_backward_on(isa, &bad, true, &dy, &mut dx, seq).is_err());
    let zero_threads = Parallelism::Threads(0);
    assert!(is_invalid(max_pool2d_forward_on(
        isa,
        &desc,
        &x,
        &mut y,
        &mut am,
        zero_threads
    )));
    assert!(is_invalid(avg_pool2d_backward_on(
        isa,
        &desc,
        false,
        &dy,
        &mut dx,
        zero_threads
    )));

    // Global pooling needs a global window.
    let mut gy = vec![0.0; 8];
    assert!(is_invalid(global_avg_pool2d_forward_on(
        isa, &desc, &x, &mut gy, seq
    )));
    assert!(is_invalid(global_avg_pool2d_backward_on(
        isa, &desc, &gy, &mut dx, seq
    )));
    let global = Pool2dDesc::global(1, 2, [4, 4]);
    let mut g2 = vec![0.0; 2];
    assert!(is_shape(global_avg_pool2d_forward_on(
        isa,
        &global,
        &x[1..],
        &mut g2,
        seq
    )));
    assert!(is_shape(global_avg_pool2d_forward_on(
        isa,
        &global,
        &x,
        &mut g2[1..],
        seq
    )));
    assert!(is_shape(global_avg_pool2d_backward_on(
        isa,
        &global,
        &g2[1..],
        &mut dx,
        seq
    )));
    assert!(is_shape(global_avg_pool2d_backward_on(
        isa,
        &global,
        &g2,
        &mut dx[1..],
        seq
    )));

    if !Isa::Avx2.is_available() {
        assert!(matches!(
            max_pool2d_forward_on(Isa::Avx2, &desc, &x, &mut y, &mut am, seq),
            Err(KernelError::UnsupportedIsa { .. })
        ));
    }
}

/// A batch of zero images is a valid, empty call.
#[test]
fn empty_batches_do_nothing() {
    for layout in [Layout::Nchw, Layout::Nhwc] {
        let desc = Pool2dDesc::new(0, 3, [5, 5], [2, 2]).layout(layout);
        for isa in Isa::available() {
            let (mut y, mut am, mut dx) = (vec![], vec![], vec![]);
            max_pool2d_forward_on(isa, &desc, &[], &mut y, &mut am, PARS[1]).unwrap();
            max_pool2d_backward_on(isa, &desc, &[], &am, &mut dx, PARS[1]).unwrap();
            avg_pool2d_forward_on(isa, &desc, true, &[], &mut y, PARS[1]).unwrap();
            avg_pool2d_backward_on(isa, &desc, true, &[], &mut dx, PARS[1]).unwrap();
        }
    }
}
