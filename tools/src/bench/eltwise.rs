//! `axonal bench eltwise`: the fused bias + activation kernels against the machine's own
//! copy bandwidth, in L2, in L3 and beyond the last-level cache.

use crate::timing::interleaved_medians;
use axonal_kernels::eltwise::{
    bias_activation_backward_on, bias_activation_forward_on, Activation, BiasShape, Saved,
};
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

/// A benchmarked kernel: its activation, direction, and the arrays it moves.
struct Kernel {
    name: &'static str,
    act: Activation,
    backward: bool,
}

const KERNELS: [Kernel; 5] = [
    Kernel {
        name: "bias_relu_forward",
        act: Activation::Relu,
        backward: false,
    },
    Kernel {
        name: "bias_relu_backward",
        act: Activation::Relu,
        backward: true,
    },
    Kernel {
        name: "bias_gelu_forward",
        act: Activation::Gelu,
        backward: false,
    },
    Kernel {
        name: "bias_gelu_backward",
        act: Activation::Gelu,
        backward: true,
    },
    Kernel {
        name: "bias_sigmoid_forward",
        act: Activation::Sigmoid,
        backward: false,
    },
];

impl Kernel {
    /// f32 arrays read or written once per call: x and y forward; the saved tensor, dy
    /// and dz backward (the bias and db are a channel's worth, not counted).
    fn arrays(&self) -> usize {
        if self.backward {
            3
        } else {
            2
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
            "bias + activation, NCHW with {CHANNELS} channels of {PLANE}, {} thread(s), isa {isa}; medians of {} rounds",
            args.threads, args.rounds
        );
        println!(
            "{:<22} {:>5} {:>10} {:>9} {:>8} {:>9} {:>7}",
            "kernel", "size", "MB moved", "ms", "GB/s", "copy GB/s", "copy%"
        );
    }
    let mut rows = Vec::new();
    for size in SIZES
        .iter()
        .filter(|s| args.sizes.is_empty() || args.sizes.iter().any(|n| n == s.label))
    {
        // The copy probe at the same array size and thread count: the ceiling of a
        // kernel that streams its arrays once.
        let copy = probe::measure_bandwidth(args.threads, size.bytes, ProbeConfig::standard());
        let len = size.bytes / 4;
        let shape = BiasShape::new(len / (CHANNELS * PLANE), CHANNELS, PLANE);
        let buffers = Buffers::new(shape.len());
        for kernel in &KERNELS {
            let seconds = time_kernel(kernel, isa, &shape, &buffers, par, args.rounds)?;
            let bytes = kernel.arrays() * shape.len() * 4;
            let gbs = bytes as f64 / seconds / 1e9;
            let fraction = gbs / copy.copy_gbs;
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
}

impl Buffers {
    fn new(len: usize) -> Self {
        Buffers {
            x: (0..len).map(|i| ((i % 29) as f32 - 14.0) * 0.25).collect(),
            dy: (0..len).map(|i| ((i % 13) as f32 - 6.0) * 0.1).collect(),
            bias: (0..CHANNELS).map(|c| (c as f32 - 32.0) * 0.01).collect(),
        }
    }
}

/// Median seconds per call of `kernel`.
fn time_kernel(
    kernel: &Kernel,
    isa: Isa,
    shape: &BiasShape,
    buffers: &Buffers,
    par: Parallelism,
    rounds: usize,
) -> Result<f64, String> {
    let Buffers { x, dy, bias } = buffers;
    let mut out = vec![0.0f32; shape.len()];
    let mut db = vec![0.0f32; CHANNELS];
    let mut error = None;
    let act = kernel.act;
    // ReLU's backward reads y (as after an in-place forward); GELU's needs x and the bias.
    let saved = if act == Activation::Relu {
        Saved::Output(x)
    } else {
        Saved::Input {
            x,
            bias: Some(bias),
        }
    };
    let mut call = || {
        let outcome = if kernel.backward {
            bias_activation_backward_on(isa, shape, act, saved, dy, &mut out, Some(&mut db), par)
        } else {
            bias_activation_forward_on(isa, shape, act, x, Some(bias), &mut out, par)
        };
        if let Err(e) = outcome {
            error = Some(e.to_string());
        }
    };
    let sample = Duration::from_millis(50);
    let median = interleaved_medians(rounds, sample, &mut [&mut call])[0];
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
