//! `axonal bench conv`: forward, backward-data and backward-weights of the default CNN
//! layers, with PyTorch's times on these machines for the seed CNN's layers.

use crate::timing::interleaved_medians;
use axonal_kernels::conv::{
    conv2d_backward_data_on, conv2d_backward_weights_on, conv2d_forward_on, Conv2dDesc,
    ConvEpilogue,
};
use axonal_kernels::{Isa, Layout, Parallelism};
use clap::Args;
use serde_json::json;
use std::time::Duration;

#[derive(Args)]
pub struct ConvArgs {
    /// Threads (default 1).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Force a kernel path (scalar, neon, avx2).
    #[arg(long)]
    isa: Option<String>,
    /// Run the layers in NHWC instead of NCHW.
    #[arg(long)]
    nhwc: bool,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Rounds per pass; the median is reported.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Only the layers whose name contains this text (e.g. conv2, res).
    #[arg(long)]
    layer: Option<String>,
    /// Draw a roofline chart (GFLOP/s against arithmetic intensity) to this SVG file.
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
}

/// A benchmark layer and PyTorch's 1-thread forward and backward milliseconds, where
/// ../shared/ANCHORS.md has them (conv1's backward there is the weights' only: it is
/// the first layer, whose input needs no gradient).
struct Layer {
    name: &'static str,
    desc: Conv2dDesc,
    pytorch_ms: Option<(f64, f64)>,
    first_layer: bool,
}

fn default_layers(layout: Layout) -> Vec<Layer> {
    let l = |name, desc: Conv2dDesc, pytorch_ms, first_layer| Layer {
        name,
        desc: desc.layout(layout),
        pytorch_ms,
        first_layer,
    };
    vec![
        l(
            "conv1 1→32 3×3 28×28",
            Conv2dDesc::new(64, 1, [28, 28], 32, [3, 3]),
            Some((10.0, 7.5)),
            true,
        ),
        l(
            "conv2 32→64 3×3 13×13",
            Conv2dDesc::new(64, 32, [13, 13], 64, [3, 3]),
            Some((5.0, 11.2)),
            false,
        ),
        l(
            "conv3 64→64 3×3 5×5",
            Conv2dDesc::new(64, 64, [5, 5], 64, [3, 3]),
            Some((0.95, 2.5)),
            false,
        ),
        l(
            "res 64→64 3×3 p1 32×32 b32",
            Conv2dDesc::new(32, 64, [32, 32], 64, [3, 3]).padding([1, 1]),
            None,
            false,
        ),
        l(
            "res 64→128 3×3 s2 p1 32×32 b32",
            Conv2dDesc::new(32, 64, [32, 32], 128, [3, 3])
                .stride([2, 2])
                .padding([1, 1]),
            None,
            false,
        ),
        l(
            "res 128→128 3×3 p1 16×16 b32",
            Conv2dDesc::new(32, 128, [16, 16], 128, [3, 3]).padding([1, 1]),
            None,
            false,
        ),
        l(
            "res 1×1 64→128 s2 32×32 b32",
            Conv2dDesc::new(32, 64, [32, 32], 128, [1, 1]).stride([2, 2]),
            None,
            false,
        ),
    ]
}

pub fn run(args: &ConvArgs) -> Result<(), String> {
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    let isa = match &args.isa {
        Some(name) => name.parse::<Isa>().and_then(Isa::check_available),
        None => Isa::selected(),
    }
    .map_err(|e| e.to_string())?;
    let par = if args.threads == 1 {
        Parallelism::Sequential
    } else {
        Parallelism::Threads(args.threads)
    };
    let layout = if args.nhwc {
        Layout::Nhwc
    } else {
        Layout::Nchw
    };
    if !args.json {
        println!(
            "conv2d, {} thread(s), isa {isa}, {}; medians of {} rounds; ms (GFLOP/s)",
            args.threads,
            layout.name(),
            args.rounds
        );
        println!(
            "{:<32} {:>15} {:>15} {:>15} {:>9}  vs PyTorch (fwd+bwd, 1 thread)",
            "layer", "forward", "backward-data", "backward-wts", "scratch"
        );
    }
    let mut rows = Vec::new();
    let mut points = Vec::new();
    let wanted = |name: &str| {
        args.layer
            .as_ref()
            .is_none_or(|f| name.contains(f.as_str()))
    };
    for layer in default_layers(layout)
        .into_iter()
        .filter(|l| wanted(l.name))
    {
        let [fwd, bwd_data, bwd_weights] = time_layer(&layer.desc, isa, par, args.rounds)?;
        let gflops = |ms: f64| layer.desc.flops() / (ms * 1e-3) / 1e9;
        let column_bytes = layer.desc.workspace_len().map_err(|e| e.to_string())? * 4;
        let ours_total = if layer.first_layer {
            fwd + bwd_weights
        } else {
            fwd + bwd_data + bwd_weights
        };
        let speedup = layer.pytorch_ms.map(|(f, b)| (f + b) / ours_total);
        if !args.json {
            let cell = |ms: f64| format!("{ms:>6.3} ({:>5.1})", gflops(ms));
            println!(
                "{:<32} {:>15} {:>15} {:>15} {:>6} KiB  {}",
                layer.name,
                cell(fwd),
                cell(bwd_data),
                cell(bwd_weights),
                column_bytes / 1024,
                speedup.map_or(String::new(), |s| format!("{s:.2}x faster")),
            );
        }
        // Compulsory traffic of the forward pass: input and weights read, output written.
        let d = &layer.desc;
        let [oh, ow] = d.output_hw().map_err(|e| e.to_string())?;
        let elems = d.batch * d.in_channels * d.input[0] * d.input[1]
            + d.weight_len()
            + d.batch * d.out_channels * oh * ow;
        points.push((
            format!("{} fwd", layer.name),
            d.flops() / (4.0 * elems as f64),
            gflops(fwd),
        ));
        rows.push(json!({
            "name": layer.name,
            "fwd_ms": round3(fwd),
            "bwd_data_ms": round3(bwd_data),
            "bwd_weights_ms": round3(bwd_weights),
            "gflops_fwd": round3(gflops(fwd)),
            "gflops_bwd_data": round3(gflops(bwd_data)),
            "gflops_bwd_weights": round3(gflops(bwd_weights)),
            "column_buffer_bytes_per_thread": column_bytes,
            "speedup_vs_pytorch_1t": speedup.map(round3),
            "threads": args.threads,
            "layout": layout.name(),
        }));
    }
    if let Some(path) = &args.plot {
        let peak = axonal_kernels::probe::measure_fma_peak(
            args.threads,
            axonal_kernels::probe::ProbeConfig::quick(),
        );
        crate::bench::write_roofline(path, "conv2d forward (axonal)", args.threads, peak, &points)?;
    }
    if args.json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        println!("(scratch: what each thread keeps — im2col columns, or for 3×3 stride-1 layers Winograd's transformed tiles and filters (plus, in NCHW, what moves to NHWC); PyTorch times from ../shared/ANCHORS.md, conv1's backward there is weights-only)");
    }
    Ok(())
}

/// Median milliseconds of forward, backward-data and backward-weights.
fn time_layer(
    desc: &Conv2dDesc,
    isa: Isa,
    par: Parallelism,
    rounds: usize,
) -> Result<[f64; 3], String> {
    let [oh, ow] = desc.output_hw().map_err(|e| e.to_string())?;
    let x: Vec<f32> = (0..desc.batch * desc.in_channels * desc.input[0] * desc.input[1])
        .map(|i| ((i % 23) as f32 - 11.0) * 0.01)
        .collect();
    let w: Vec<f32> = (0..desc.weight_len())
        .map(|i| ((i % 7) as f32 - 3.0) * 0.01)
        .collect();
    let bias = vec![0.1f32; desc.out_channels];
    let dy: Vec<f32> = (0..desc.batch * desc.out_channels * oh * ow)
        .map(|i| ((i % 11) as f32 - 5.0) * 0.01)
        .collect();
    let (mut y, mut dx) = (vec![0.0f32; dy.len()], vec![0.0f32; x.len()]);
    let (mut dw, mut db) = (vec![0.0f32; w.len()], vec![0.0f32; desc.out_channels]);
    let mut error = None;
    let mut note = |r: axonal_kernels::Result<()>| {
        if let Err(e) = r {
            error = Some(e.to_string());
        }
    };
    let epilogue = ConvEpilogue {
        bias: Some(&bias),
        activation: axonal_kernels::eltwise::Activation::Relu,
    };
    let sample = Duration::from_millis(20);
    let mut medians = [0.0; 3];
    medians[0] = interleaved_medians(
        rounds,
        sample,
        &mut [&mut || note(conv2d_forward_on(isa, desc, &x, &w, epilogue, &mut y, par))],
    )[0];
    medians[1] = interleaved_medians(
        rounds,
        sample,
        &mut [&mut || note(conv2d_backward_data_on(isa, desc, &dy, &w, &mut dx, par))],
    )[0];
    medians[2] = interleaved_medians(
        rounds,
        sample,
        &mut [&mut || {
            note(conv2d_backward_weights_on(
                isa,
                desc,
                &x,
                &dy,
                &mut dw,
                Some(&mut db),
                par,
            ))
        }],
    )[0];
    if let Some(e) = error {
        return Err(e);
    }
    Ok(medians.map(|s| s * 1e3))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
