//! The blocked SGEMM against the reference GEMM: every ISA path, random shapes,
//! transposes, strides, alpha/beta and epilogues; bitwise determinism across threads.

use axonal_kernels::eltwise::Activation;
use axonal_kernels::gemm::{sgemm_on, Bias, Epilogue, GemmDesc, MatrixLayout, Transpose};
use axonal_kernels::reference;
use axonal_kernels::{Isa, KernelError, Parallelism};
use proptest::prelude::*;

/// How a matrix is stored: dense or padded, row- or column-major, or with both strides > 1.
#[derive(Debug, Clone, Copy)]
enum Storage {
    RowMajor,
    ColMajor,
    PaddedRows(usize),
    PaddedCols(usize),
    /// Every other element of a row-major matrix with twice the columns, rows padded.
    Spread,
}

impl Storage {
    fn layout(self, rows: usize, cols: usize) -> MatrixLayout {
        match self {
            Storage::RowMajor => MatrixLayout::row_major(cols),
            Storage::ColMajor => MatrixLayout::col_major(rows),
            Storage::PaddedRows(pad) => MatrixLayout::row_major(cols + pad),
            Storage::PaddedCols(pad) => MatrixLayout::col_major(rows + pad),
            Storage::Spread => MatrixLayout {
                row_stride: 2 * cols + 3,
                col_stride: 2,
            },
        }
    }
}

fn storage() -> impl Strategy<Value = Storage> {
    prop_oneof![
        Just(Storage::RowMajor),
        Just(Storage::ColMajor),
        (1usize..5).prop_map(Storage::PaddedRows),
        (1usize..5).prop_map(Storage::PaddedCols),
        Just(Storage::Spread),
    ]
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::Identity),
        Just(Activation::Relu),
        Just(Activation::LeakyRelu { slope: 0.1 }),
        Just(Activation::Sigmoid),
        Just(Activation::Tanh),
        Just(Activation::Gelu),
        Just(Activation::GeluTanh),
        Just(Activation::Elu { alpha: 1.0 }),
        Just(Activation::Silu),
    ]
}

/// Sizes that hit 0, 1, primes, tile multiples and non-multiples, and block edges.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => 0usize..20,
        1 => prop::sample::select(vec![0, 1, 5, 6, 7, 8, 13, 16, 17, 31, 48, 97, 127, 257, 299]),
        2 => 0usize..300,
    ]
}

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

#[derive(Debug, Clone)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    trans_a: Transpose,
    trans_b: Transpose,
    a_storage: Storage,
    b_storage: Storage,
    c_storage: Storage,
    alpha: f32,
    beta: f32,
    bias: u8,
    activation: Activation,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    let transpose = prop_oneof![Just(Transpose::No), Just(Transpose::Yes)];
    (
        (size(), size(), size()),
        (transpose.clone(), transpose),
        (storage(), storage(), storage()),
        prop_oneof![Just(1.0f32), Just(0.0), Just(-0.5), Just(2.0)],
        prop_oneof![Just(0.0f32), Just(1.0), Just(-1.5)],
        0u8..3,
        activation(),
        any::<u64>(),
    )
        .prop_map(
            |(
                (m, n, k),
                (trans_a, trans_b),
                (a_storage, b_storage, c_storage),
                alpha,
                beta,
                bias,
                activation,
                seed,
            )| Case {
                m,
                n,
                k,
                trans_a,
                trans_b,
                a_storage,
                b_storage,
                c_storage,
                alpha,
                beta,
                bias,
                activation,
                seed,
            },
        )
}

struct Operands {
    desc: GemmDesc,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    bias: Vec<f32>,
}

impl Case {
    fn operands(&self) -> Operands {
        let (a_rows, a_cols) = match self.trans_a {
            Transpose::No => (self.m, self.k),
            Transpose::Yes => (self.k, self.m),
        };
        let (b_rows, b_cols) = match self.trans_b {
            Transpose::No => (self.k, self.n),
            Transpose::Yes => (self.n, self.k),
        };
        let desc = GemmDesc {
            m: self.m,
            n: self.n,
            k: self.k,
            trans_a: self.trans_a,
            trans_b: self.trans_b,
            a: self.a_storage.layout(a_rows, a_cols),
            b: self.b_storage.layout(b_rows, b_cols),
            c: self.c_storage.layout(self.m, self.n),
        };
        let span = |l: MatrixLayout, r, c| l.span("test", r, c).unwrap();
        let mut c = values(span(desc.c, self.m, self.n), self.seed ^ 3);
        if self.beta == 0.0 {
            // BLAS semantics: with beta = 0, NaN in C must not leak into the result.
            c.iter_mut().step_by(3).for_each(|v| *v = f32::NAN);
        }
        let bias_len = match self.bias {
            1 => self.m,
            2 => self.n,
            _ => 0,
        };
        Operands {
            desc,
            a: values(span(desc.a, a_rows, a_cols), self.seed ^ 1),
            b: values(span(desc.b, b_rows, b_cols), self.seed ^ 2),
            c,
            bias: values(bias_len, self.seed ^ 4),
        }
    }

    fn epilogue<'a>(&self, bias: &'a [f32]) -> Epilogue<'a> {
        let bias = match self.bias {
            1 => Bias::PerRow(bias),
            2 => Bias::PerCol(bias),
            _ => Bias::None,
        };
        Epilogue {
            alpha: self.alpha,
            beta: self.beta,
            bias,
            activation: self.activation,
        }
    }
}

/// The reference result, and a bound on the rounding error of a correct f32 GEMM:
/// a few ulps per term of the dot product, times the magnitudes that enter it.
fn expected(case: &Case, ops: &Operands) -> (Vec<f32>, Vec<f32>) {
    let Operands {
        desc,
        a,
        b,
        c,
        bias,
    } = ops;
    let mut want = c.clone();
    let alpha_zero = case.alpha == 0.0;
    if !alpha_zero {
        reference::gemm(desc, case.alpha, a, b, case.beta, &mut want).unwrap();
    }
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let mut magnitude = vec![0.0f32; want.len()];
    if !alpha_zero {
        reference::gemm(
            desc,
            case.alpha.abs(),
            &abs(a),
            &abs(b),
            0.0,
            &mut magnitude,
        )
        .unwrap();
    }
    let (rs, cs) = (desc.c.row_stride, desc.c.col_stride);
    let mut tolerance = vec![0.0f32; want.len()];
    for i in 0..case.m {
        for j in 0..case.n {
            let at = i * rs + j * cs;
            let prior = if case.beta == 0.0 {
                0.0
            } else {
                case.beta * c[at]
            };
            if alpha_zero {
                want[at] = prior;
            }
            let bias_value = match case.bias {
                1 => bias[i],
                2 => bias[j],
                _ => 0.0,
            };
            let z = want[at] + bias_value;
            let mut y = [0.0f32];
            reference::activation_forward(case.activation, &[z], &mut y).unwrap();
            want[at] = y[0];
            let scale = magnitude[at] + prior.abs() + bias_value.abs();
            tolerance[at] = 4.0 * (case.k as f32 + 3.0) * f32::EPSILON * scale + 1e-6;
        }
    }
    (want, tolerance)
}

fn check_case(case: &Case, isa: Isa, par: Parallelism) -> Result<(), TestCaseError> {
    let mut ops = case.operands();
    let (want, tolerance) = expected(case, &ops);
    let untouched = ops.c.clone();
    let epilogue = case.epilogue(&ops.bias);
    sgemm_on(isa, &ops.desc, &ops.a, &ops.b, &mut ops.c, &epilogue, par).unwrap();
    let (rs, cs) = (ops.desc.c.row_stride, ops.desc.c.col_stride);
    let mut inside = vec![false; ops.c.len()];
    for i in 0..case.m {
        for j in 0..case.n {
            let at = i * rs + j * cs;
            inside[at] = true;
            let (got, w) = (ops.c[at], want[at]);
            prop_assert!(
                (got - w).abs() <= tolerance[at],
                "{isa} {par:?} ({i},{j}): got {got}, want {w}, tolerance {}",
                tolerance[at]
            );
        }
    }
    // Padding between the rows and columns of C is not touched.
    for (at, &is_inside) in inside.iter().enumerate() {
        if !is_inside {
            prop_assert!(
                ops.c[at].to_bits() == untouched[at].to_bits(),
                "padding at {at} written"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_isa_matches_the_reference(case in case()) {
        for isa in Isa::available() {
            check_case(&case, isa, Parallelism::Sequential)?;
        }
    }

    #[test]
    fn threads_match_the_reference(case in case()) {
        check_case(&case, Isa::detected(), Parallelism::Threads(3))?;
    }
}

#[test]
fn results_are_bitwise_identical_for_1_2_and_3_threads() {
    // Shapes that split into several row blocks, or into column ranges (skinny M).
    for (m, n, k) in [
        (301, 257, 600),
        (32, 1000, 9),
        (7, 2000, 300),
        (700, 20, 70),
    ] {
        for isa in Isa::available() {
            let desc = GemmDesc::row_major(m, n, k);
            let a = values(m * k, 11);
            let b = values(k * n, 12);
            let bias = values(n, 13);
            let epilogue = Epilogue::default()
                .bias(Bias::PerCol(&bias))
                .activation(Activation::Relu);
            let run = |par| {
                let mut c = vec![0.0f32; m * n];
                sgemm_on(isa, &desc, &a, &b, &mut c, &epilogue, par).unwrap();
                c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            let one = run(Parallelism::Sequential);
            for threads in [1, 2, 3] {
                assert!(
                    one == run(Parallelism::Threads(threads)),
                    "{isa} {m}x{n}x{k} {threads} threads"
                );
            }
        }
    }
}

#[test]
fn bad_calls_are_errors_not_panics() {
    let desc = GemmDesc::row_major(4, 5, 6);
    let (a, b) = (vec![0.0; 24], vec![0.0; 30]);
    let mut c = vec![0.0; 20];
    let plain = Epilogue::default();
    let isa = Isa::detected();
    let seq = Parallelism::Sequential;
    assert!(matches!(
        sgemm_on(isa, &desc, &a[..23], &b, &mut c, &plain, seq),
        Err(KernelError::BufferTooSmall { what: "gemm A", .. })
    ));
    assert!(matches!(
        sgemm_on(isa, &desc, &a, &b, &mut c[..19], &plain, seq),
        Err(KernelError::BufferTooSmall { what: "gemm C", .. })
    ));
    let short_bias = [0.0; 4];
    let wrong_bias = plain.bias(Bias::PerCol(&short_bias));
    assert!(matches!(
        sgemm_on(isa, &desc, &a, &b, &mut c, &wrong_bias, seq),
        Err(KernelError::ShapeMismatch { .. })
    ));
    assert!(sgemm_on(isa, &desc, &a, &b, &mut c, &plain, Parallelism::Threads(0)).is_err());
    let nan_slope = plain.activation(Activation::LeakyRelu { slope: f32::NAN });
    assert!(sgemm_on(isa, &desc, &a, &b, &mut c, &nan_slope, seq).is_err());
}

#[test]
fn denormal_products_are_flushed_and_the_callers_mode_is_kept() {
    // Every product (1e-20 · 1e-20) is below the smallest normal f32: flushed to zero.
    let desc = GemmDesc::row_major(8, 8, 8);
    let (a, b) = (vec![1e-20f32; 64], vec![1e-20f32; 64]);
    for isa in Isa::available() {
        let mut c = vec![f32::NAN; 64];
        sgemm_on(
            isa,
            &desc,
            &a,
            &b,
            &mut c,
            &Epilogue::default(),
            Parallelism::Sequential,
        )
        .unwrap();
        assert!(c.iter().all(|&v| v == 0.0), "{isa}: {:?}", &c[..4]);
    }
    // The caller's arithmetic still keeps denormals after the call.
    let tiny = std::hint::black_box(1e-39f32);
    assert!(tiny * std::hint::black_box(0.5) > 0.0);
}
