//! `axonal bench batchnorm`: batch-norm training forward and backward on CNN shapes, as
//! time, GB/s moved and a fraction of the machine's measured copy bandwidth, against
//! PyTorch's `BatchNorm2d` where it was measured.

use crate::timing::interleaved_medians;
use axonal_kernels::arch::CacheSizes;
use axonal_kernels::norm::{
    batch_norm_backward_on, batch_norm_forward_training_on, batch_norm_relu_backward_on,
    batch_norm_relu_forward_training_on, BatchNormDesc,
};
use axonal_kernels::probe::{self, Bandwidth, ProbeConfig};
use axonal_kernels::{Isa, Layout, Parallelism};
use clap::Args;
use serde_json::json;
use std::cell::RefCell;
use std::time::Duration;

#[derive(Args)]
pub struct BatchNormArgs {
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
    /// Only the cases whose name contains this text (repeatable), e.g. --case nhwc.
    #[arg(long = "case")]
    only: Vec<String>,
}

/// PyTorch 2.15's `BatchNorm2d(64)` in training on 64 × 64 × 13 × 13 NCHW at 1 thread,
/// forward and backward medians in ms (../shared/ANCHORS.md).
const PYTORCH_MS: (f64, f64) = (1.8, 0.8);

struct Case {
    name: &'static str,
    desc: BatchNormDesc,
    relu: bool,
    /// Whether PyTorch's anchor was measured on this case.
    anchored: bool,
}

fn cases() -> Vec<Case> {
    let case = |name, n, c, hw: usize, layout, relu, anchored| Case {
        name,
        desc: BatchNormDesc::new(n, c, hw * hw).layout(layout),
        relu,
        anchored,
    };
    let (nchw, nhwc) = (Layout::Nchw, Layout::Nhwc);
    vec![
        case("64x64x13x13 nchw", 64, 64, 13, nchw, false, true),
        case("64x64x13x13 nhwc", 64, 64, 13, nhwc, false, false),
        case("64x32x26x26 nchw", 64, 32, 26, nchw, false, false),
        case("64x32x26x26 nhwc", 64, 32, 26, nhwc, false, false),
        case("64x64x11x11 nchw", 64, 64, 11, nchw, false, false),
        case("64x64x11x11 nhwc", 64, 64, 11, nhwc, false, false),
        case("64x64x13x13 nchw +relu", 64, 64, 13, nchw, true, false),
        case("64x64x13x13 nhwc +relu", 64, 64, 13, nhwc, true, false),
    ]
}

/// Median seconds of one forward and one backward call, and the bytes each must move.
struct Timing {
    fwd_s: f64,
    bwd_s: f64,
    fwd_bytes: f64,
    bwd_bytes: f64,
}

fn time_case(case: &Case, isa: Isa, par: Parallelism, rounds: usize) -> Result<Timing, String> {
    let desc = &case.desc;
    let (len, c) = (desc.len(), desc.channels);
    let x: Vec<f32> = (0..len)
        .map(|i| ((i * 7919 % 1009) as f32 - 504.0) * 1e-3)
        .collect();
    let dy: Vec<f32> = (0..len).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect();
    let gamma: Vec<f32> = (0..c).map(|i| 1.0 + 0.01 * i as f32).collect();
    let beta: Vec<f32> = (0..c).map(|i| 0.02 * i as f32).collect();
    let (mut rm, mut rv) = (vec![0.0f32; c], vec![1.0f32; c]);
    let (mut mean, mut inv_std) = (vec![0.0f32; c], vec![0.0f32; c]);
    let (mut y, mut dx) = (vec![0.0f32; len], vec![0.0f32; len]);
    let (mut dgamma, mut dbeta) = (vec![0.0f32; c], vec![0.0f32; c]);
    let error = RefCell::new(None);
    let keep = |r: axonal_kernels::Result<()>| {
        if let Err(e) = r {
            error.borrow_mut().get_or_insert(e.to_string());
        }
    };
    let train = if case.relu {
        batch_norm_relu_forward_training_on
    } else {
        batch_norm_forward_training_on
    };
    // The backward needs the forward's saved statistics (and y for ReLU): run it once.
    keep(train(
        isa,
        desc,
        &x,
        &gamma,
        &beta,
        0.1,
        &mut rm,
        &mut rv,
        &mut y,
        &mut mean,
        &mut inv_std,
        par,
    ));
    let (saved_mean, saved_inv_std, y_saved) = (mean.clone(), inv_std.clone(), y.clone());
    let mut fwd = || {
        keep(train(
            isa,
            desc,
            &x,
            &gamma,
            &beta,
            0.1,
            &mut rm,
            &mut rv,
            &mut y,
            &mut mean,
            &mut inv_std,
            par,
        ))
    };
    let mut bwd = || {
        let (m, s) = (&saved_mean, &saved_inv_std);
        keep(if case.relu {
            batch_norm_relu_backward_on(
                isa,
                desc,
                &x,
                &y_saved,
                &dy,
                &gamma,
                m,
                s,
                &mut dx,
                &mut dgamma,
                &mut dbeta,
                par,
            )
        } else {
            batch_norm_backward_on(
                isa,
                desc,
                &x,
                &dy,
                &gamma,
                m,
                s,
                &mut dx,
                &mut dgamma,
                &mut dbeta,
                par,
            )
        })
    };
    let sample = Duration::from_millis(20);
    // Each pass timed on its own, so that its working set alone is in the caches.
    let fwd_s = interleaved_medians(rounds, sample, &mut [&mut fwd])[0];
    let bwd_s = interleaved_medians(rounds, sample, &mut [&mut bwd])[0];
    if let Some(e) = error.into_inner() {
        return Err(format!("{}: {e}", case.name));
    }
    // What each pass must move at least: forward reads x and writes y; backward reads
    // x and dy (and y with ReLU) and writes dx.
    let tensor = (4 * len) as f64;
    let bwd_tensors = if case.relu { 4.0 } else { 3.0 };
    Ok(Timing {
        fwd_s,
        bwd_s,
        fwd_bytes: 2.0 * tensor,
        bwd_bytes: bwd_tensors * tensor,
    })
}

pub fn run(args: &BatchNormArgs) -> Result<(), String> {
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
    // DRAM (sized as `axonal info` sizes it) and the last-level cache, where these 2–11 MB
    // working sets live when a training step repeats.
    let dram_bytes = if args.quick {
        64 << 20
    } else {
        (CacheSizes::detect().l3_or_default() * 8).max(64 << 20)
    };
    let dram = probe::measure_bandwidth(args.threads, dram_bytes, config);
    let l3 = probe::measure_bandwidth(args.threads, 4 << 20, config);
    if !args.json {
        println!(
            "batch norm (training), {} thread(s), isa {isa}; copy bandwidth {:.1} GB/s (DRAM, {} MiB buffers), {:.1} GB/s (L3, 4 MiB buffers); medians of {} rounds",
            args.threads,
            dram.copy_gbs,
            dram_bytes >> 20,
            l3.copy_gbs,
            args.rounds
        );
        println!(
            "{:<24} {:>7} {:>7} {:>8} {:>8} {:>8} {:>12} {:>12}  vs PyTorch (fwd+bwd)",
            "case", "fwd ms", "bwd ms", "total ms", "fwd GB/s", "bwd GB/s", "%DRAM f/b", "%L3 f/b"
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
    args: &BatchNormArgs,
    isa: Isa,
    (dram, l3): (Bandwidth, Bandwidth),
) -> serde_json::Value {
    let (fwd_ms, bwd_ms) = (t.fwd_s * 1e3, t.bwd_s * 1e3);
    let total_ms = fwd_ms + bwd_ms;
    let (gbs_fwd, gbs_bwd) = (t.fwd_bytes / t.fwd_s / 1e9, t.bwd_bytes / t.bwd_s / 1e9);
    let pytorch_total = PYTORCH_MS.0 + PYTORCH_MS.1;
    let speedup = case.anchored.then(|| {
        (
            PYTORCH_MS.0 / fwd_ms,
            PYTORCH_MS.1 / bwd_ms,
            pytorch_total / total_ms,
        )
    });
    if !args.json {
        let vs = speedup.map_or(String::new(), |(f, b, total)| {
            format!(
                "  {total:.1}x ({f:.1}x / {b:.1}x; {} + {} ms)",
                PYTORCH_MS.0, PYTORCH_MS.1
            )
        });
        let pct = |gbs: f64, bw: &Bandwidth| 100.0 * gbs / bw.copy_gbs;
        println!(
            "{:<24} {:>7.3} {:>7.3} {:>8.3} {:>8.1} {:>8.1} {:>5.0}/{:>4.0}% {:>5.0}/{:>4.0}%{vs}",
            case.name,
            fwd_ms,
            bwd_ms,
            total_ms,
            gbs_fwd,
            gbs_bwd,
            pct(gbs_fwd, &dram),
            pct(gbs_bwd, &dram),
            pct(gbs_fwd, &l3),
            pct(gbs_bwd, &l3),
        );
    }
    let mut row = json!({
        "name": case.name,
        "fwd_ms": round4(fwd_ms),
        "bwd_ms": round4(bwd_ms),
        "total_ms": round4(total_ms),
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
        "relu": case.relu,
    });
    if let Some((f, b, total)) = speedup {
        row["speedup_vs_pytorch_fwd"] = json!(round2(f));
        row["speedup_vs_pytorch_bwd"] = json!(round2(b));
        row["speedup_vs_pytorch_total"] = json!(round2(total));
    }
    row
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
