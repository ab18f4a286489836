//! `axonal bench`: kernel benchmarks against peers, as tables or JSON.

mod eltwise;
mod gemm;

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
    /// Fused bias + activation, forward and backward, against the copy bandwidth.
    Eltwise(eltwise::EltwiseArgs),
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    match &args.which {
        Which::Gemm(a) => gemm::run(a),
        Which::Eltwise(a) => eltwise::run(a),
    }
}
