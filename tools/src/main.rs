//! `axonal`: inspect the machine, benchmark the kernels, profile and train models.

mod bench;
mod info;
mod plot;
mod profile;
mod timing;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "axonal",
    version,
    about = "Fast f32 CPU kernels for CNNs: inspect, benchmark, profile, train"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// The arguments are parsed once per run; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Print the CPU's ISA paths, caches, measured FMA peak and memory bandwidth.
    Info(info::InfoArgs),
    /// Benchmark kernels against peers (medians, fraction of peak, ratios).
    Bench(bench::BenchArgs),
    /// Time training (or inference) steps of a model on synthetic data, layer by layer.
    Profile(profile::ProfileArgs),
    /// Train a model on real data (Fashion-MNIST by default).
    Train(train::TrainArgs),
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Info(args) => info::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Profile(args) => profile::run(&args),
        Command::Train(args) => train::run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// An activation layout named on the command line.
fn parse_layout(name: &str) -> Result<axonal_kernels::Layout, String> {
    match name {
        "nchw" => Ok(axonal_kernels::Layout::Nchw),
        "nhwc" => Ok(axonal_kernels::Layout::Nhwc),
        other => Err(format!("--layout {other:?}: use nchw or nhwc")),
    }
}

/// `axonal profile | head` closes stdout early; printing then fails with EPIPE, which
/// `println!` turns into a panic. Exit quietly instead, as Unix tools do on SIGPIPE.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
