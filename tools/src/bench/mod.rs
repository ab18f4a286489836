//! `axonal bench`: kernel benchmarks against peers, as tables or JSON.

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
    /// Pooling forward and backward: ms, GB/s and fraction of memory bandwidth.
    Pool(pool::PoolArgs),
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    match &args.which {
        Which::Gemm(a) => gemm::run(a),
        Which::Pool(a) => pool::run(a),
    }
}
