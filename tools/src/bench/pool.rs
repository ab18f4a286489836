//! `axonal bench pool`: pooling forward and backward on CNN shapes, as time, GB/s moved
//! and a fraction of the machine's measured memory bandwidth.

use crate::timing::interleaved_medians;
use axonal_kernels::arch::CacheSizes;
use axonal_kernels::pool::{
    avg_pool2d_backward_on, avg_pool2d_forward_on, global_avg_pool2d_backward_on,
    global_avg_pool2d_forward_on, max_pool2d_backward_on, max_pool2d_forward_on, Pool2dDesc,
};
use axonal_kernels::probe::{self, Bandwidth, ProbeConfig};
use axonal_kernels::{Isa, Layout, Parallelism};
use clap::Args;
use serde_json::json;
use std::cell::RefCell;
use std::time::Duration;

#[derive(Args)]
pub struct PoolArgs {
    /// Threads (default 1).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Force a kernel path (scalar, neon, avx2).
    #[arg(long)]
    isa: Option<String>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Timed rounds per pass; the median is reported.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Short bandwidth probes (a quick look, less stable).
    #[arg(long)]
    quick: bool,
    /// Only the cases whose name contains this text (repeatable), e.g. --case nchw.
    #[arg(long = "case")]
    only: Vec<String>,
}

/// PyTorch 2.15's `MaxPool2d(2)` with indices on 64 × 32 × 26 × 26 NCHW at 1 thread,
/// forward and backward medians in ms (../shared/ANCHORS.md).
const PYTORCH_MAX_NCHW_MS: (f64, f64) = (9.5, 0.9);

#[derive(Clone, Copy)]
enum Kind {
    Max,
    Avg { count_include_pad: bool },
    Global,
}

struct Case {
    name: &'static str,
    kind: Kind,
    desc: Pool2dDesc,
    /// Whether PyTorch's anchor was measured on this case.
    anchored: bool,
}

fn cases() -> Vec<Case> {
    let max_26 = Pool2dDesc::new(64, 32, [26, 26], [2, 2]);
    let avg_32 = Pool2dDesc::new(32, 64, [32, 32], [3, 3])
        .stride([2, 2])
        .padding([1, 1]);
    let global = Pool2dDesc::global(32, 128, [8, 8]);
    let avg = Kind::Avg {
        count_include_pad: true,
    };
    let case = |name, kind, desc, anchored| Case {
        name,
        kind,
        desc,
        anchored,
    };
    vec![
        case("max 2x2/2 64x32x26x26 nchw", Kind::Max, max_26, true),
        case(
            "max 2x2/2 64x32x26x26 nhwc",
            Kind::Max,
            max_26.layout(Layout::Nhwc),
            false,
        ),
        case(
            "max 2x2/2 64x64x11x11 nchw",
            Kind::Max,
            Pool2dDesc::new(64, 64, [11, 11], [2, 2]),
            false,
        ),
        case("avg 3x3/2 p1 32x64x32x32 nchw", avg, avg_32, false),
        case(
            "avg 3x3/2 p1 32x64x32x32 nhwc",
            avg,
            avg_32.layout(Layout::Nhwc),
            false,
        ),
        case("global avg 32x128x8x8 nchw", Kind::Global, global, false),
        case(
            "global avg 32x128x8x8 nhwc",
            Kind::Global,
            global.layout(Layout::Nhwc),
            false,
        ),
    ]
}

/// Median seconds of one forward and one backward call, and the bytes each moves.
struct Timing {
    fwd_s: f64,
    bwd_s: f64,
    fwd_bytes: f64,
    bwd_bytes: f64,
}

fn time_case(case: &Case, isa: Isa, par: Parallelism, rounds: usize) -> Result<Timing, String> {
    let desc = &case.desc;
    let (xd, yd) = (
        desc.input_dims(),
        desc.output_dims().map_err(|e| e.to_string())?,
    );
    let x: Vec<f32> = (0..xd.len())
        .map(|i| ((i * 7919 % 1009) as f32 - 504.0) * 1e-3)
        .collect();
    let dy: Vec<f32> = (0..yd.len()).map(|i| (i % 13) as f32 * 0.1).collect();
    let (mut y, mut dx) = (vec![0.0f32; yd.len()], vec![0.0f32; xd.len()]);
    let mut argmax = vec![0u32; yd.len()];
    let f32_bytes = |n: usize| (4 * n) as f64;
    let (input, output) = (f32_bytes(xd.len()), f32_bytes(yd.len()));
    let error = RefCell::new(None);
    let keep = |r: axonal_kernels::Result<()>| {
        if let Err(e) = r {
            error.borrow_mut().get_or_insert(e.to_string());
        }
    };
    let sample = Duration::from_millis(20);
    let (medians, fwd_bytes, bwd_bytes) = match case.kind {
        Kind::Max => {
            // Backward needs a real argmax: run the forward pass once first.
            keep(max_pool2d_forward_on(
                isa,
                desc,
                &x,
                &mut y,
                &mut argmax,
                par,
            ));
            let (mut fwd_y, mut fwd_am) = (y.clone(), argmax.clone());
            let mut fwd = || {
                keep(max_pool2d_forward_on(
                    isa,
                    desc,
                    &x,
                    &mut fwd_y,
                    &mut fwd_am,
                    par,
                ))
            };
            let mut bwd = || {
                keep(max_pool2d_backward_on(
                    isa, desc, &dy, &argmax, &mut dx, par,
                ))
            };
            let m = medians(rounds, sample, &mut fwd, &mut bwd);
            // Forward writes y and a u32 argmax; backward reads dy and argmax.
            (m, input + 2.0 * output, 2.0 * output + input)
        }
        Kind::Avg { count_include_pad } => {
            let mut fwd = || {
                keep(avg_pool2d_forward_on(
                    isa,
                    desc,
                    count_include_pad,
                    &x,
                    &mut y,
                    par,
                ))
            };
            let mut bwd = || {
                keep(avg_pool2d_backward_on(
                    isa,
                    desc,
                    count_include_pad,
                    &dy,
                    &mut dx,
                    par,
                ))
            };
            let m = medians(rounds, sample, &mut fwd, &mut bwd);
            (m, input + output, output + input)
        }
        Kind::Global => {
            let mut fwd = || keep(global_avg_pool2d_forward_on(isa, desc, &x, &mut y, par));
            let mut bwd = || keep(global_avg_pool2d_backward_on(isa, desc, &dy, &mut dx, par));
            let m = medians(rounds, sample, &mut fwd, &mut bwd);
            (m, input + output, output + input)
        }
    };
    if let Some(e) = error.into_inner() {
        return Err(format!("{}: {e}", case.name));
    }
    Ok(Timing {
        fwd_s: medians[0],
        bwd_s: medians[1],
        fwd_bytes,
        bwd_bytes,
    })
}

pub fn run(args: &PoolArgs) -> Result<(), String> {
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    let isa = match &args.isa {
        Some(name) => name.parse::<Isa>().and_then(Isa::check_available),
        None => Isa::selected(),
    }
    .map_err(|e| e.to_string())?;
    let chosen: Vec<Case> = cases()
        .into_iter()
        .filter(|c| args.only.is_empty() || args.only.iter().any(|o| c.name.contains(o.as_str())))
        .collect();
    if chosen.is_empty() {
        return Err(format!(
            "--case {:?} matches none of: {}",
            args.only,
            cases()
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let par = if args.threads == 1 {
        Parallelism::Sequential
    } else {
        Parallelism::Threads(args.threads)
    };
    let config = if args.quick {
        ProbeConfig::quick()
    } else {
        ProbeConfig::standard()
    };
    // The two ceilings a pooling pass meets: DRAM (sized as `axonal info` sizes it), and
    // the last-level cache, where these working sets (2–10 MB) live when a step repeats.
    let dram_bytes = if args.quick {
        64 << 20
    } else {
        (CacheSizes::detect().l3_or_default() * 8).max(64 << 20)
    };
    let dram = probe::measure_bandwidth(args.threads, dram_bytes, config);
    let l3 = probe::measure_bandwidth(args.threads, 4 << 20, config);
    if !args.json {
        println!(
            "pooling, {} thread(s), isa {isa}; copy bandwidth {:.1} GB/s (DRAM, {} MiB buffers), {:.1} GB/s (L3, 4 MiB buffers); medians of {} rounds",
            args.threads,
            dram.copy_gbs,
            dram_bytes >> 20,
            l3.copy_gbs,
            args.rounds
        );
        println!(
            "{:<32} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}  vs PyTorch (fwd / bwd)",
            "case", "fwd ms", "bwd ms", "fwd GB/s", "bwd GB/s", "%DRAM", "%L3"
        );
    }
    let mut rows = Vec::new();
    for case in chosen {
        let t = time_case(&case, isa, par, args.rounds)?;
        rows.push(report(&case, &t, args, isa, (dram, l3)));
    }
    if args.json {
        println!("{}", serde_json::Value::Array(rows));
    }
    Ok(())
}

/// Prints one table row (unless `--json`) and returns the case's JSON object.
fn report(
    case: &Case,
    t: &Timing,
    args: &PoolArgs,
    isa: Isa,
    (dram, l3): (Bandwidth, Bandwidth),
) -> serde_json::Value {
    let (fwd_ms, bwd_ms) = (t.fwd_s * 1e3, t.bwd_s * 1e3);
    let (gbs_fwd, gbs_bwd) = (t.fwd_bytes / t.fwd_s / 1e9, t.bwd_bytes / t.bwd_s / 1e9);
    let speedup = case.anchored.then(|| {
        (
            PYTORCH_MAX_NCHW_MS.0 / fwd_ms,
            PYTORCH_MAX_NCHW_MS.1 / bwd_ms,
        )
    });
    if !args.json {
        let vs = speedup.map_or(String::new(), |(f, b)| {
            format!(
                "  {f:.1}x / {b:.1}x ({} / {} ms)",
                PYTORCH_MAX_NCHW_MS.0, PYTORCH_MAX_NCHW_MS.1
            )
        });
        println!(
            "{:<32} {:>8.3} {:>8.3} {:>8.1} {:>8.1} {:>6.0}% {:>6.0}%{vs}",
            case.name,
            fwd_ms,
            bwd_ms,
            gbs_fwd,
            gbs_bwd,
            100.0 * gbs_fwd / dram.copy_gbs,
            100.0 * gbs_fwd / l3.copy_gbs,
        );
    }
    let mut row = json!({
        "name": case.name,
        "fwd_ms": round4(fwd_ms),
        "bwd_ms": round4(bwd_ms),
        "gbs_fwd": round2(gbs_fwd),
        "gbs_bwd": round2(gbs_bwd),
        "fraction_of_dram_copy_fwd": round3(gbs_fwd / dram.copy_gbs),
        "fraction_of_dram_copy_bwd": round3(gbs_bwd / dram.copy_gbs),
        "fraction_of_l3_copy_fwd": round3(gbs_fwd / l3.copy_gbs),
        "fraction_of_l3_copy_bwd": round3(gbs_bwd / l3.copy_gbs),
        "bandwidth_gbs_copy_dram": round2(dram.copy_gbs),
        "bandwidth_gbs_copy_l3": round2(l3.copy_gbs),
        "threads": args.threads,
        "isa": isa.name(),
        "layout": case.desc.layout.name(),
    });
    if let Some((f, b)) = speedup {
        row["speedup_vs_pytorch_fwd"] = json!(round2(f));
        row["speedup_vs_pytorch_bwd"] = json!(round2(b));
    }
    row
}

/// Median seconds per call of `fwd`, then of `bwd`, each timed on its own so that its
/// working set alone is in the caches, as in a per-layer profile.
fn medians(
    rounds: usize,
    sample: Duration,
    fwd: &mut dyn FnMut(),
    bwd: &mut dyn FnMut(),
) -> Vec<f64> {
    vec![
        interleaved_medians(rounds, sample, &mut [fwd])[0],
        interleaved_medians(rounds, sample, &mut [bwd])[0],
    ]
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round4(x: f64) -> f64 {
    (x * 10000.0).round() / 10000.0
}
