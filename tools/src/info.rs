//! `axonal info`: what this machine is and what it can do, measured.

use axonal_kernels::arch::{CacheSizes, Isa};
use axonal_kernels::probe::{self, Bandwidth, ProbeConfig};
use clap::Args;
use serde_json::json;

#[derive(Args)]
pub struct InfoArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Force a kernel path (scalar, neon, avx2) instead of AXONAL_ISA / detection.
    #[arg(long)]
    isa: Option<String>,
    /// Threads for the all-thread figures (default: every hardware thread).
    #[arg(long)]
    threads: Option<usize>,
    /// Shorter measurements (less stable figures), for smoke tests.
    #[arg(long)]
    quick: bool,
    /// Only list the ISA paths this CPU can run, one per line, and measure nothing.
    #[arg(long, conflicts_with_all = ["json", "quick", "threads"])]
    list_isa: bool,
}

/// Everything `info` reports.
struct MachineInfo {
    cpu: String,
    isa: Isa,
    isa_detected: Isa,
    isa_available: Vec<Isa>,
    threads: usize,
    caches: CacheSizes,
    peak_1t: f64,
    peak_all: f64,
    dram_bytes: usize,
    bandwidth_1t: Bandwidth,
    bandwidth_all: Bandwidth,
}

pub fn run(args: &InfoArgs) -> Result<(), String> {
    if args.list_isa {
        for isa in Isa::available() {
            println!("{isa}");
        }
        return Ok(());
    }
    if let Some(name) = &args.isa {
        let isa: Isa = name.parse().map_err(|e| format!("--isa: {e}"))?;
        Isa::force(Some(isa)).map_err(|e| format!("--isa: {e}"))?;
    }
    let isa = Isa::selected().map_err(|e| e.to_string())?;
    let threads = match args.threads {
        Some(0) => return Err("--threads must be at least 1".into()),
        Some(n) => n,
        None => probe::available_threads(),
    };
    let config = if args.quick {
        ProbeConfig::quick()
    } else {
        ProbeConfig::standard()
    };
    let caches = CacheSizes::detect();
    // Eight times the last-level cache (at least 64 MiB) is far enough out of cache
    // that the figure is DRAM's.
    let dram_bytes = if args.quick {
        64 << 20
    } else {
        (caches.l3_or_default() * 8).max(64 << 20)
    };
    let info = MachineInfo {
        cpu: cpu_model(),
        isa,
        isa_detected: Isa::detected(),
        isa_available: Isa::available(),
        threads,
        caches,
        peak_1t: probe::measure_fma_peak(1, config),
        peak_all: probe::measure_fma_peak(threads, config),
        dram_bytes,
        bandwidth_1t: probe::measure_bandwidth(1, dram_bytes, config),
        bandwidth_all: probe::measure_bandwidth(threads, dram_bytes, config),
    };
    if args.json {
        println!("{}", to_json(&info));
    } else {
        print_table(&info);
    }
    Ok(())
}

fn to_json(info: &MachineInfo) -> serde_json::Value {
    json!({
        "cpu": info.cpu,
        "isa": info.isa.name(),
        "isa_detected": info.isa_detected.name(),
        "isa_available": info.isa_available.iter().map(|i| i.name()).collect::<Vec<_>>(),
        "threads": info.threads,
        "l1d_bytes": info.caches.l1d,
        "l2_bytes": info.caches.l2,
        "l3_bytes": info.caches.l3,
        "peak_gflops_1t": round2(info.peak_1t),
        "peak_gflops_all": round2(info.peak_all),
        "bandwidth_buffer_bytes": info.dram_bytes,
        "bandwidth_gbs_read": round2(info.bandwidth_all.read_gbs),
        "bandwidth_gbs_copy": round2(info.bandwidth_all.copy_gbs),
        "bandwidth_gbs_read_1t": round2(info.bandwidth_1t.read_gbs),
        "bandwidth_gbs_copy_1t": round2(info.bandwidth_1t.copy_gbs),
    })
}

fn print_table(info: &MachineInfo) {
    let names = |isas: &[Isa]| isas.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ");
    println!("axonal {} — machine information", env!("CARGO_PKG_VERSION"));
    println!("  cpu         {} ({} threads used)", info.cpu, info.threads);
    println!(
        "  isa         {} selected (detected {}; available: {})",
        info.isa,
        info.isa_detected,
        names(&info.isa_available)
    );
    println!(
        "  caches      L1d {} · L2 {} · L3 {} (per core, per core, shared)",
        bytes(info.caches.l1d),
        bytes(info.caches.l2),
        bytes(info.caches.l3)
    );
    println!(
        "  FMA peak    {:.1} GFLOP/s on 1 thread · {:.1} GFLOP/s on {} threads (f32, best of windows)",
        info.peak_1t, info.peak_all, info.threads
    );
    println!(
        "  bandwidth   {} buffers: read {:.1} GB/s, copy {:.1} GB/s on 1 thread · read {:.1} GB/s, copy {:.1} GB/s on {} threads",
        bytes(Some(info.dram_bytes)),
        info.bandwidth_1t.read_gbs,
        info.bandwidth_1t.copy_gbs,
        info.bandwidth_all.read_gbs,
        info.bandwidth_all.copy_gbs,
        info.threads
    );
    println!("  (copy counts bytes read plus bytes written; every figure is the best of several timed windows)");
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn bytes(size: Option<usize>) -> String {
    match size {
        None => "unknown".to_string(),
        Some(b) if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        Some(b) if b >= 1 << 10 => format!("{} KiB", b >> 10),
        Some(b) => format!("{b} B"),
    }
}

/// The CPU's model name from /proc/cpuinfo, or the architecture where that is missing.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}
