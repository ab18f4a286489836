//! `axonal bench`: kernel benchmarks against peers, as tables or JSON.

mod batchnorm;
mod conv;
mod eltwise;
mod gemm;
mod pool;

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: Which,
}

#[derive(Subcommand)]
enum Which {
    /// SGEMM: axonal against matrixmultiply on square and CNN shapes.
    Gemm(gemm::GemmArgs),
    /// conv2d forward, backward-data and backward-weights on the default CNN layers.
    Conv(conv::ConvArgs),
    /// Pooling forward and backward: ms, GB/s and fraction of memory bandwidth.
    Pool(pool::PoolArgs),
    /// Fused bias + activation, forward and backward, against the copy bandwidth.
    Eltwise(eltwise::EltwiseArgs),
    /// Batch-norm training forward + backward: ms, GB/s, fraction of copy bandwidth.
    Batchnorm(batchnorm::BatchNormArgs),
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    match &args.which {
        Which::Gemm(a) => gemm::run(a),
        Which::Conv(a) => conv::run(a),
        Which::Pool(a) => pool::run(a),
        Which::Eltwise(a) => eltwise::run(a),
        Which::Batchnorm(a) => batchnorm::run(a),
    }
}

/// Measures the copy bandwidth and writes a roofline of `points` (name, flop/byte,
/// GFLOP/s) under the measured `peak` to `path`.
pub fn write_roofline(
    path: &std::path::Path,
    title: &str,
    threads: usize,
    peak: f64,
    points: &[(String, f64, f64)],
) -> Result<(), String> {
    use axonal_kernels::probe::{measure_bandwidth, ProbeConfig};
    let bandwidth = measure_bandwidth(threads, 64 << 20, ProbeConfig::quick()).copy_gbs;
    let svg = crate::plot::roofline(
        &format!("{title}, {threads} thread(s)"),
        peak,
        bandwidth,
        points,
    );
    std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))
}
