//! `axonal bench gemm`: axonal's SGEMM and matrixmultiply side by side, interleaved.

use crate::timing::interleaved_medians;
use axonal_kernels::gemm::{sgemm_on, Epilogue, GemmDesc, MatrixLayout, Transpose};
use axonal_kernels::probe::{self, ProbeConfig};
use axonal_kernels::{Isa, Parallelism};
use clap::Args;
use serde_json::json;
use std::time::Duration;

#[derive(Args)]
pub struct GemmArgs {
    /// Threads for both libraries (default 1).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Force a kernel path (scalar, neon, avx2).
    #[arg(long)]
    isa: Option<String>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Only these shapes, as MxNxK (repeatable), e.g. --shape 512x512x512.
    #[arg(long = "shape")]
    shapes: Vec<String>,
    /// Interleaved rounds per shape; the median is reported.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Draw a roofline chart (GFLOP/s against arithmetic intensity) to this SVG file.
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
}

/// One benchmark shape: C (m × n) = op(A) (m × k) · op(B) (k × n).
#[derive(Clone, Copy)]
struct Shape {
    m: usize,
    n: usize,
    k: usize,
    trans_a: Transpose,
    trans_b: Transpose,
}

impl Shape {
    fn new(m: usize, n: usize, k: usize) -> Self {
        Shape {
            m,
            n,
            k,
            trans_a: Transpose::No,
            trans_b: Transpose::No,
        }
    }

    /// Dense storage of A and B as they are before op().
    fn desc(&self) -> GemmDesc {
        let a = match self.trans_a {
            Transpose::No => MatrixLayout::row_major(self.k),
            Transpose::Yes => MatrixLayout::row_major(self.m),
        };
        let b = match self.trans_b {
            Transpose::No => MatrixLayout::row_major(self.n),
            Transpose::Yes => MatrixLayout::row_major(self.k),
        };
        GemmDesc {
            trans_a: self.trans_a,
            trans_b: self.trans_b,
            a,
            b,
            ..GemmDesc::row_major(self.m, self.n, self.k)
        }
    }

    fn label(&self) -> &'static str {
        match (self.trans_a, self.trans_b) {
            (Transpose::No, Transpose::No) => "A·B",
            (Transpose::Yes, Transpose::No) => "Aᵀ·B",
            (Transpose::No, Transpose::Yes) => "A·Bᵀ",
            (Transpose::Yes, Transpose::Yes) => "Aᵀ·Bᵀ",
        }
    }
}

/// The default list: squares, then the CNN layers' forward and backward shapes.
fn default_shapes() -> Vec<Shape> {
    let mut shapes: Vec<Shape> = [64, 128, 256, 512, 1024, 2048]
        .into_iter()
        .map(|s| Shape::new(s, s, s))
        .collect();
    for (m, n, k) in [
        (32, 43264, 9),
        (64, 7744, 288),
        (64, 576, 576),
        (64, 64, 576),
        (256, 256, 2304),
        (128, 3136, 1152),
        (512, 196, 4608),
        (3136, 128, 1152),
    ] {
        shapes.push(Shape::new(m, n, k));
    }
    // conv2 backward: dW = dY · colᵀ and dcol = Wᵀ · dY.
    shapes.push(Shape {
        trans_b: Transpose::Yes,
        ..Shape::new(64, 288, 7744)
    });
    shapes.push(Shape {
        trans_a: Transpose::Yes,
        ..Shape::new(288, 7744, 64)
    });
    shapes
}

fn parse_shape(text: &str) -> Result<Shape, String> {
    let dims: Vec<usize> = text
        .split('x')
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("--shape {text:?}: expected MxNxK, e.g. 512x512x512"))?;
    match dims[..] {
        [m, n, k] if m > 0 && n > 0 && k > 0 => Ok(Shape::new(m, n, k)),
        _ => Err(format!(
            "--shape {text:?}: expected three positive sizes MxNxK"
        )),
    }
}

pub fn run(args: &GemmArgs) -> Result<(), String> {
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    let isa = match &args.isa {
        Some(name) => name.parse::<Isa>().and_then(Isa::check_available),
        None => Isa::selected(),
    }
    .map_err(|e| e.to_string())?;
    let shapes = if args.shapes.is_empty() {
        default_shapes()
    } else {
        args.shapes
            .iter()
            .map(|s| parse_shape(s))
            .collect::<Result<_, _>>()?
    };
    // matrixmultiply reads its thread count once, from this variable.
    std::env::set_var("MATMUL_NUM_THREADS", args.threads.to_string());
    let par = if args.threads == 1 {
        Parallelism::Sequential
    } else {
        Parallelism::Threads(args.threads)
    };
    let peak = probe::measure_fma_peak(args.threads, ProbeConfig::standard());
    if !args.json {
        println!(
            "SGEMM, {} thread(s), isa {isa}; measured FMA peak {peak:.1} GFLOP/s; medians of {} interleaved rounds",
            args.threads, args.rounds
        );
        println!(
            "{:>6} {:>6} {:>6} {:>5}  {:>9} {:>9} {:>7} {:>7}",
            "M", "N", "K", "op", "axonal", "mm", "ratio", "peak%"
        );
    }
    let mut rows = Vec::new();
    let mut points = Vec::new();
    for shape in shapes {
        let (ours, theirs) = time_shape(shape, isa, par, args.rounds)?;
        let flops = shape.desc().flops();
        let (g_ours, g_theirs) = (flops / ours / 1e9, flops / theirs / 1e9);
        let row = json!({
            "m": shape.m, "n": shape.n, "k": shape.k, "op": shape.label(),
            "gflops": round2(g_ours),
            "gflops_matrixmultiply": round2(g_theirs),
            "ratio_vs_matrixmultiply": round3(g_ours / g_theirs),
            "fraction_of_peak": round3(g_ours / peak),
            "threads": args.threads,
            "isa": isa.name(),
        });
        if !args.json {
            println!(
                "{:>6} {:>6} {:>6} {:>5}  {:>9.1} {:>9.1} {:>6.2}x {:>6.1}%",
                shape.m,
                shape.n,
                shape.k,
                shape.label(),
                g_ours,
                g_theirs,
                g_ours / g_theirs,
                100.0 * g_ours / peak
            );
        }
        // Compulsory traffic: A and B read, C written once.
        let bytes = 4.0 * (shape.m * shape.k + shape.k * shape.n + shape.m * shape.n) as f64;
        points.push((
            format!("{}x{}x{}", shape.m, shape.n, shape.k),
            flops / bytes,
            g_ours,
        ));
        rows.push(row);
    }
    if let Some(path) = &args.plot {
        crate::bench::write_roofline(path, "SGEMM (axonal)", args.threads, peak, &points)?;
    }
    if args.json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        let mut ratios: Vec<f64> = rows
            .iter()
            .filter_map(|r| r["ratio_vs_matrixmultiply"].as_f64())
            .collect();
        println!(
            "median ratio vs matrixmultiply: {:.2}x",
            crate::timing::median(&mut ratios)
        );
    }
    Ok(())
}

/// Median seconds per call of axonal and of matrixmultiply on `shape`.
fn time_shape(
    shape: Shape,
    isa: Isa,
    par: Parallelism,
    rounds: usize,
) -> Result<(f64, f64), String> {
    let desc = shape.desc();
    let a: Vec<f32> = (0..shape.m * shape.k)
        .map(|i| ((i % 17) as f32 - 8.0) * 0.01)
        .collect();
    let b: Vec<f32> = (0..shape.k * shape.n)
        .map(|i| ((i % 13) as f32 - 6.0) * 0.01)
        .collect();
    let mut c_ours = vec![0.0f32; shape.m * shape.n];
    let mut c_theirs = vec![0.0f32; shape.m * shape.n];
    let epilogue = Epilogue::default();
    let (rsa, csa) = desc.op_a_strides();
    let (rsb, csb) = desc.op_b_strides();
    let mut error = None;
    let mut ours = || {
        if let Err(e) = sgemm_on(isa, &desc, &a, &b, &mut c_ours, &epilogue, par) {
            error = Some(e.to_string());
        }
    };
    let mut theirs = || {
        // SAFETY: the strides describe the dense buffers allocated above, and C does not
        // alias A or B.
        unsafe {
            matrixmultiply::sgemm(
                shape.m,
                shape.k,
                shape.n,
                1.0,
                a.as_ptr(),
                rsa as isize,
                csa as isize,
                b.as_ptr(),
                rsb as isize,
                csb as isize,
                0.0,
                c_theirs.as_mut_ptr(),
                shape.n as isize,
                1,
            )
        }
    };
    let sample = Duration::from_millis(30);
    let medians = interleaved_medians(rounds, sample, &mut [&mut ours, &mut theirs]);
    if let Some(e) = error {
        return Err(e);
    }
    Ok((medians[0], medians[1]))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
