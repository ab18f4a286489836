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
