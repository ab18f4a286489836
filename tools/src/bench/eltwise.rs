//! `axonal bench eltwise`: the fused bias + activation kernels, the optimizer updates
//! and dropout against the machine's own copy bandwidth, in L2, in L3 and beyond the
//! last-level cache.

use crate::timing::interleaved_medians;
use axonal_kernels::dropout::{
    dropout_backward_masked_on, dropout_forward_on, mask_words, Dropout,
};
use axonal_kernels::eltwise::{
    bias_activation_backward_on, bias_activation_forward_on, Activation, BiasShape, Saved,
};
use axonal_kernels::optim::{adam_step_on, sgd_step_on, Adam, Sgd};
use axonal_kernels::probe::{self, ProbeConfig};
use axonal_kernels::{Isa, Parallelism};
use clap::Args;
use serde_json::json;
use std::time::Duration;

#[derive(Args)]
pub struct EltwiseArgs {
    /// Threads for the kernels and the bandwidth probe (default 1).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Force a kernel path (scalar, neon, avx2).
    #[arg(long)]
    isa: Option<String>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Only these tensor sizes (repeatable): l2, l3, dram.
    #[arg(long = "size")]
    sizes: Vec<String>,
    /// Timed rounds per kernel and size; the median is reported.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Draw a roofline chart of the kernels on the largest size to this SVG file.
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
}

/// Floating-point operations per element, counted from each kernel's formula (the
/// vector-math polynomials for GELU and sigmoid included, the dropout hash not): the
/// arithmetic intensity of the roofline plot.
fn flops_per_element(name: &str) -> f64 {
    match name {
        "bias_relu_forward" | "bias_relu_backward" => 2.0,
        "bias_gelu_forward" => 32.0,
        "bias_gelu_backward" => 45.0,
        "bias_sigmoid_forward" => 20.0,
        "sgd_momentum_step" => 5.0,
        "adam_step" => 13.0,
        "adamw_step" => 14.0,
        _ => 1.0,
    }
}

/// A tensor size: the bytes of one f32 array of the kernel.
struct Size {
    label: &'static str,
    bytes: usize,
}

/// One array in L2 (256 KiB), one in L3 (4 MiB), and one far beyond L3 (256 MiB).
const SIZES: [Size; 3] = [
    Size {
        label: "l2",
        bytes: 256 << 10,
    },
    Size {
        label: "l3",
        bytes: 4 << 20,
    },
    Size {
        label: "dram",
        bytes: 256 << 20,
    },
];

/// Channels and plane of the NCHW tensors: 64 channels of 32 × 32.
const CHANNELS: usize = 64;
const PLANE: usize = 1024;

/// What a benchmarked kernel computes.
#[derive(Clone, Copy)]
enum Op {
    /// Bias + activation, forward or backward.
    Bias {
        act: Activation,
        backward: bool,
    },
    /// SGD with momentum 0.9 (step 2: the buffer is read).
    SgdMomentum,
    /// Adam, or AdamW with `decoupled` (step 2: the moments are read).
    Adam {
        decoupled: bool,
    },
    /// Dropout p = 0.5 storing its bit mask, and the backward from that mask.
    DropoutForward,
    DropoutBackward,
}

/// A benchmarked kernel: its name and what it computes.
struct Kernel {
    name: &'static str,
    op: Op,
}

const fn bias(name: &'static str, act: Activation, backward: bool) -> Kernel {
    Kernel {
        name,
        op: Op::Bias { act, backward },
    }
}

const KERNELS: [Kernel; 10] = [
    bias("bias_relu_forward", Activation::Relu, false),
    bias("bias_relu_backward", Activation::Relu, true),
    bias("bias_gelu_forward", Activation::Gelu, false),
    bias("bias_gelu_backward", Activation::Gelu, true),
    bias("bias_sigmoid_forward", Activation::Sigmoid, false),
    Kernel {
        name: "sgd_momentum_step",
        op: Op::SgdMomentum,
    },
    Kernel {
        name: "adam_step",
        op: Op::Adam { decoupled: false },
    },
    Kernel {
        name: "adamw_step",
        op: Op::Adam { decoupled: true },
    },
    Kernel {
        name: "dropout_forward",
        op: Op::DropoutForward,
    },
    Kernel {
        name: "dropout_backward_mask",
        op: Op::DropoutBackward,
    },
];

impl Kernel {
    /// f32 arrays read or written once per call: x and y forward; the saved tensor, dy
    /// and dz backward (the bias and db are a channel's worth, not counted); SGD reads
    /// p, g, buf and writes p, buf; Adam reads p, g, m, v and writes p, m, v; dropout
    /// reads one array and writes one, plus the bit mask (1/32 of an array).
    fn arrays(&self) -> f64 {
        match self.op {
            Op::Bias { backward: true, .. } => 3.0,
            Op::Bias {
                backward: false, ..
            } => 2.0,
            Op::SgdMomentum => 5.0,
            Op::Adam { .. } => 7.0,
            Op::DropoutForward | Op::DropoutBackward => 2.0 + 1.0 / 32.0,
        }
    }
}

pub fn run(args: &EltwiseArgs) -> Result<(), String> {
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    let isa = match &args.isa {
        Some(name) => name.parse::<Isa>().and_then(Isa::check_available),
        None => Isa::selected(),
    }
    .map_err(|e| e.to_string())?;
    for name in &args.sizes {
        if !SIZES.iter().any(|s| s.label == name) {
            return Err(format!("--size {name:?}: expected l2, l3 or dram"));
        }
    }
    let par = if args.threads == 1 {
        Parallelism::Sequential
    } else {
        Parallelism::Threads(args.threads)
    };
    if !args.json {
        println!(
            "bias + activation (NCHW, {CHANNELS} channels of {PLANE}), optimizer updates and dropout over flat arrays; {} thread(s), isa {isa}; medians of {} rounds",
            args.threads, args.rounds
        );
        println!(
            "{:<22} {:>5} {:>10} {:>9} {:>8} {:>9} {:>7}",
            "kernel", "size", "MB moved", "ms", "GB/s", "copy GB/s", "copy%"
        );
    }
    let mut rows = Vec::new();
    let mut points = Vec::new();
    for size in SIZES
        .iter()
        .filter(|s| args.sizes.is_empty() || args.sizes.iter().any(|n| n == s.label))
    {
        // The copy probe at the same array size and thread count: the ceiling of a
        // kernel that streams its arrays once.
        let copy = probe::measure_bandwidth(args.threads, size.bytes, ProbeConfig::standard());
        let len = size.bytes / 4;
        let shape = BiasShape::new(len / (CHANNELS * PLANE), CHANNELS, PLANE);
        let mut buffers = Buffers::new(shape.len());
        for kernel in &KERNELS {
            let seconds = time_kernel(kernel, isa, &shape, &mut buffers, par, args.rounds)?;
            let bytes = (kernel.arrays() * (shape.len() * 4) as f64) as usize;
            let gbs = bytes as f64 / seconds / 1e9;
            let fraction = gbs / copy.copy_gbs;
            if size.label == "dram" || args.sizes.len() == 1 {
                let flops = flops_per_element(kernel.name) * shape.len() as f64;
                points.push((
                    kernel.name.to_string(),
                    flops / bytes as f64,
                    flops / seconds / 1e9,
                ));
            }
            rows.push(json!({
                "kernel": kernel.name,
                "size": size.label,
                "tensor_bytes": shape.len() * 4,
                "bytes": bytes,
                "ms": round3(seconds * 1e3),
                "gbs": round2(gbs),
                "copy_gbs": round2(copy.copy_gbs),
                "fraction_of_bandwidth": round3(fraction),
                "threads": args.threads,
                "isa": isa.name(),
            }));
            if !args.json {
                println!(
                    "{:<22} {:>5} {:>10.1} {:>9.3} {:>8.1} {:>9.1} {:>6.1}%",
                    kernel.name,
                    size.label,
                    bytes as f64 / 1e6,
                    seconds * 1e3,
                    gbs,
                    copy.copy_gbs,
                    100.0 * fraction
                );
            }
        }
    }
    if let Some(path) = &args.plot {
        let peak = probe::measure_fma_peak(args.threads, ProbeConfig::quick());
        crate::bench::write_roofline(
            path,
            "element-wise kernels (axonal)",
            args.threads,
            peak,
            &points,
        )?;
    }
    if args.json {
        println!("{}", serde_json::Value::Array(rows));
    }
    Ok(())
}

/// The arrays every kernel of one size reads and writes.
struct Buffers {
    x: Vec<f32>,
    dy: Vec<f32>,
    bias: Vec<f32>,
    out: Vec<f32>,
    db: Vec<f32>,
    /// An optimizer's gradient (no zeros: a zero gradient decays the state into
    /// denormals over the repeated steps, which measures the FPU's denormal assists
    /// rather than the kernel), parameter and two state arrays (SGD uses the first).
    grad: Vec<f32>,
    param: Vec<f32>,
    state1: Vec<f32>,
    state2: Vec<f32>,
    mask: Vec<u32>,
}

impl Buffers {
    fn new(len: usize) -> Self {
        Buffers {
            x: (0..len).map(|i| ((i % 29) as f32 - 14.0) * 0.25).collect(),
            dy: (0..len).map(|i| ((i % 13) as f32 - 6.0) * 0.1).collect(),
            bias: (0..CHANNELS).map(|c| (c as f32 - 32.0) * 0.01).collect(),
            out: vec![0.0; len],
            db: vec![0.0; CHANNELS],
            grad: (0..len).map(|i| ((i % 13) as f32 - 6.5) * 0.1).collect(),
            param: (0..len).map(|i| ((i % 17) as f32 - 8.0) * 0.1).collect(),
            state1: vec![0.01; len],
            state2: vec![0.001; len],
            mask: vec![0; mask_words(len)],
        }
    }
}

/// One call of `kernel`.
fn call(
    kernel: &Kernel,
    isa: Isa,
    shape: &BiasShape,
    b: &mut Buffers,
    par: Parallelism,
) -> axonal_kernels::Result<()> {
    let dropout = Dropout::new(0.5, 7, 1);
    match kernel.op {
        Op::Bias { act, backward } => {
            if backward {
                // ReLU's backward reads y (as after an in-place forward); GELU's needs x and
                // the bias.
                let saved = if act == Activation::Relu {
                    Saved::Output(&b.x)
                } else {
                    Saved::Input {
                        x: &b.x,
                        bias: Some(&b.bias),
                    }
                };
                bias_activation_backward_on(
                    isa,
                    shape,
                    act,
                    saved,
                    &b.dy,
                    &mut b.out,
                    Some(&mut b.db),
                    par,
                )
            } else {
                bias_activation_forward_on(isa, shape, act, &b.x, Some(&b.bias), &mut b.out, par)
            }
        }
        Op::SgdMomentum => {
            let h = Sgd {
                momentum: 0.9,
                ..Sgd::new(1e-3)
            };
            sgd_step_on(isa, &h, 2, &mut b.param, &b.grad, &mut b.state1, par)
        }
        Op::Adam { decoupled } => {
            let h = if decoupled {
                Adam::adamw(1e-3, 0.01)
            } else {
                Adam::new(1e-3)
            };
            let (p, m, v) = (&mut b.param, &mut b.state1, &mut b.state2);
            adam_step_on(isa, &h, 2, p, &b.grad, m, v, par)
        }
        Op::DropoutForward => {
            dropout_forward_on(isa, &dropout, &b.x, &mut b.out, Some(&mut b.mask), par)
        }
        Op::DropoutBackward => {
            dropout_backward_masked_on(isa, dropout.p, &b.mask, &b.dy, &mut b.out, par)
        }
    }
}

/// Median seconds per call of `kernel`.
fn time_kernel(
    kernel: &Kernel,
    isa: Isa,
    shape: &BiasShape,
    buffers: &mut Buffers,
    par: Parallelism,
    rounds: usize,
) -> Result<f64, String> {
    let mut error = None;
    let mut run = || {
        if let Err(e) = call(kernel, isa, shape, buffers, par) {
            error = Some(e.to_string());
        }
    };
    let sample = Duration::from_millis(50);
    let median = interleaved_medians(rounds, sample, &mut [&mut run])[0];
    match error {
        Some(e) => Err(e),
        None => Ok(median),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
