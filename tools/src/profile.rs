//! `axonal profile`: where the time of a training (or inference) step goes, layer by
//! layer, on synthetic data.

use crate::timing::median;
use axonal::data::{Augment, Dataset};
use axonal::models::{self, MODEL_NAMES};
use axonal::optim::{Method, Optimizer};
use axonal::train::{apply_loss, Batch};
use axonal::{Context, Graph, Loss, Rng};
use axonal_kernels::arch::Isa;
use axonal_kernels::optim::{Adam, Sgd};
use axonal_kernels::probe::{self, ProbeConfig};
use axonal_kernels::Parallelism;
use clap::Args;
use serde_json::json;
use std::time::Instant;

#[derive(Args)]
pub struct ProfileArgs {
    /// The model: seed_cnn, seed_cnn_bn, mlp, resnet_mini, logistic, two_layer_sigmoid.
    #[arg(long, default_value = "seed_cnn")]
    model: String,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Threads (default: every hardware thread).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed steps (after warm-up steps that are not timed).
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Force a kernel path (scalar, neon, avx2).
    #[arg(long)]
    isa: Option<String>,
    /// Memory layout of the activations: nchw, nhwc (default: the model's faster one).
    #[arg(long)]
    layout: Option<String>,
    /// Forward passes only, in evaluation mode.
    #[arg(long)]
    inference: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Write a Chrome trace-event timeline (Perfetto, chrome://tracing) to this file.
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
}

/// What a timed run measured.
struct Measured {
    step_seconds: Vec<f64>,
    loss_seconds: f64,
    optimizer_seconds: f64,
    /// (name, start, seconds) of the loss and optimizer phases, for traces.
    extra_events: Vec<(&'static str, f64, f64)>,
}

pub fn run(args: &ProfileArgs) -> Result<(), String> {
    if let Some(name) = &args.isa {
        let isa: Isa = name.parse().map_err(|e| format!("--isa: {e}"))?;
        Isa::force(Some(isa)).map_err(|e| format!("--isa: {e}"))?;
    }
    let isa = Isa::selected().map_err(|e| e.to_string())?;
    if args.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    if args.steps == 0 {
        return Err("--steps must be at least 1".into());
    }
    let threads = match args.threads {
        Some(0) => return Err("--threads must be at least 1".into()),
        Some(n) => n,
        None => probe::available_threads(),
    };
    if !MODEL_NAMES.contains(&args.model.as_str()) {
        return Err(format!(
            "unknown model {:?}; known: {}",
            args.model,
            MODEL_NAMES.join(", ")
        ));
    }
    let par = if threads == 1 {
        Parallelism::Sequential
    } else {
        Parallelism::Threads(threads)
    };
    let mut model = models::build(&args.model, 0).map_err(|e| e.to_string())?;
    if let Some(layout) = &args.layout {
        model.graph.set_layout(crate::parse_layout(layout)?);
    }
    let sample = model.graph.sample_shape().to_vec();
    let data = Dataset::synthetic(args.batch * 4, &sample, model.classes.max(2), 1);
    let method = match args.model.as_str() {
        "mlp" => Method::Sgd(Sgd::new(0.01)),
        _ => Method::Adam(Adam::new(1e-3)),
    };
    let mut optimizer = Optimizer::new(method).map_err(|e| e.to_string())?;
    let ctx = Context {
        par,
        train: !args.inference,
        step: 0,
    };
    let measured = measure(
        args,
        &mut model.graph,
        model.loss,
        &mut optimizer,
        &ctx,
        &data,
    )
    .map_err(|e| e.to_string())?;
    let peak = probe::measure_fma_peak(threads, ProbeConfig::quick());
    let bandwidth = probe::measure_bandwidth(threads, 64 << 20, ProbeConfig::quick()).copy_gbs;
    let report = Report::new(
        args,
        &mut model.graph,
        &measured,
        threads,
        isa,
        peak,
        bandwidth,
    );
    if let Some(path) = &args.trace {
        write_trace(path, &model.graph, &measured)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if args.json {
        println!("{}", report.json());
    } else {
        report.print();
    }
    Ok(())
}

fn measure(
    args: &ProfileArgs,
    graph: &mut Graph,
    loss: Loss,
    optimizer: &mut Optimizer,
    ctx: &Context,
    data: &Dataset,
) -> axonal::Result<Measured> {
    let mut rng = Rng::new(2);
    let mut batch = Batch::default();
    let indices: Vec<usize> = (0..args.batch).map(|i| i % data.len()).collect();
    let augment = Augment::default();
    let (mut loss_seconds, mut optimizer_seconds) = (0.0, 0.0);
    let mut extra_events = Vec::new();
    let mut step_seconds = Vec::with_capacity(args.steps);
    // The steps run inside the thread pool, as `axonal::train::train_step` does: the
    // calling thread is one of the workers.
    axonal_kernels::parallel::install(ctx.par, || -> axonal::Result<()> {
        for s in 0..args.warmup + args.steps {
            let timed = s >= args.warmup;
            if s == args.warmup {
                graph.set_timing(true, args.trace.is_some());
            }
            let origin = graph.timing_origin();
            let start = Instant::now();
            let input = graph.input_mut(indices.len())?;
            data.fill(&indices, input, &mut batch.labels, &augment, &mut rng)?;
            graph.forward(ctx)?;
            if !args.inference {
                let loss_start = Instant::now();
                apply_loss(graph, loss, &mut batch, ctx.par)?;
                let loss_end = Instant::now();
                graph.backward(ctx)?;
                let optimizer_start = Instant::now();
                optimizer.step(graph, ctx.par)?;
                if let (true, Some(origin)) = (timed, origin) {
                    let l = (loss_end - loss_start).as_secs_f64();
                    let o = optimizer_start.elapsed().as_secs_f64();
                    loss_seconds += l;
                    optimizer_seconds += o;
                    if args.trace.is_some() {
                        extra_events.push(("loss", (loss_start - origin).as_secs_f64(), l));
                        extra_events.push((
                            "optimizer",
                            (optimizer_start - origin).as_secs_f64(),
                            o,
                        ));
                    }
                }
            }
            if timed {
                step_seconds.push(start.elapsed().as_secs_f64());
            }
        }
        Ok(())
    })?;
    let n = args.steps as f64;
    loss_seconds /= n;
    optimizer_seconds /= n;
    Ok(Measured {
        step_seconds,
        loss_seconds,
        optimizer_seconds,
        extra_events,
    })
}

/// One row of the per-layer table.
struct Row {
    label: String,
    kind: String,
    shape: Vec<usize>,
    fwd_ms: f64,
    bwd_ms: f64,
    flops: f64,
    bytes: f64,
}

struct Report {
    model: String,
    batch: usize,
    threads: usize,
    isa: Isa,
    layout: axonal_kernels::Layout,
    inference: bool,
    steps: usize,
    step_ms: f64,
    step_ms_p10: f64,
    step_ms_p90: f64,
    images_per_sec: f64,
    rows: Vec<Row>,
    loss_ms: f64,
    optimizer_ms: f64,
    model_flops: f64,
    peak_gflops: f64,
    bandwidth_gbs: f64,
    peak_rss_bytes: Option<u64>,
    params: usize,
    buffer_bytes: usize,
}

impl Report {
    fn new(
        args: &ProfileArgs,
        graph: &mut Graph,
        measured: &Measured,
        threads: usize,
        isa: Isa,
        peak: f64,
        bandwidth: f64,
    ) -> Report {
        let steps = measured.step_seconds.len();
        let mut sorted = measured.step_seconds.clone();
        let step = median(&mut sorted);
        let pct = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        let (fwd, bwd) = graph.timings().unwrap_or((&[], &[]));
        let rows: Vec<Row> = graph
            .nodes()
            .into_iter()
            .enumerate()
            .map(|(i, n)| Row {
                fwd_ms: 1e3 * fwd.get(i).copied().unwrap_or(0.0) / steps as f64,
                bwd_ms: 1e3 * bwd.get(i).copied().unwrap_or(0.0) / steps as f64,
                flops: n.flops.forward
                    + if args.inference {
                        0.0
                    } else {
                        n.backward_flops
                    },
                bytes: n.bytes * if args.inference { 1.0 } else { 2.0 },
                label: n.label,
                kind: n.kind,
                shape: n.output_shape,
            })
            .collect();
        let model_flops = rows.iter().map(|r| r.flops).sum();
        let params = graph.param_count();
        let buffer_bytes = graph.buffer_bytes();
        Report {
            model: args.model.clone(),
            batch: args.batch,
            threads,
            isa,
            layout: graph.layout(),
            inference: args.inference,
            steps,
            step_ms: 1e3 * step,
            step_ms_p10: 1e3 * pct(0.1),
            step_ms_p90: 1e3 * pct(0.9),
            images_per_sec: args.batch as f64 / step,
            rows,
            loss_ms: 1e3 * measured.loss_seconds,
            optimizer_ms: 1e3 * measured.optimizer_seconds,
            model_flops,
            peak_gflops: peak,
            bandwidth_gbs: bandwidth,
            peak_rss_bytes: peak_rss_bytes(),
            params,
            buffer_bytes,
        }
    }

    /// Model FLOPs per second over the measured FMA peak.
    fn fraction_of_peak(&self) -> f64 {
        self.model_flops / (self.step_ms * 1e-3) / (self.peak_gflops * 1e9)
    }

    fn print(&self) {
        let mode = if self.inference {
            "inference"
        } else {
            "training"
        };
        println!(
            "axonal profile: {} {mode}, batch {}, {} thread{}, ISA {}, {}",
            self.model,
            self.batch,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.isa,
            self.layout.name()
        );
        println!(
            "  {:.0} images/s   step {:.3} ms median (p10 {:.3}, p90 {:.3}) over {} steps",
            self.images_per_sec, self.step_ms, self.step_ms_p10, self.step_ms_p90, self.steps
        );
        println!(
            "  {} parameters; {:.2} GFLOP per step → {:.1} GFLOP/s = {:.0}% of the measured FMA peak ({:.0} GFLOP/s)",
            self.params,
            self.model_flops / 1e9,
            self.model_flops / (self.step_ms * 1e-3) / 1e9,
            100.0 * self.fraction_of_peak(),
            self.peak_gflops
        );
        match self.peak_rss_bytes {
            Some(rss) => println!(
                "  peak memory (RSS) {:.1} MiB; activations and gradients {:.1} MiB",
                rss as f64 / 1048576.0,
                self.buffer_bytes as f64 / 1048576.0
            ),
            None => println!(
                "  activations and gradients {:.1} MiB",
                self.buffer_bytes as f64 / 1048576.0
            ),
        }
        println!();
        println!(
            "  {:<18} {:<14} {:<16} {:>9} {:>9} {:>6} {:>9} {:>16}",
            "layer", "kind", "output", "fwd ms", "bwd ms", "share", "GFLOP/s", "of peak / bw"
        );
        let total_ms = self.step_ms;
        let mut beyond_peak = self.fraction_of_peak() > 1.0;
        for r in &self.rows {
            let ms = r.fwd_ms + r.bwd_ms;
            let (rate, fraction) = if r.flops > 0.0 {
                let gflops = r.flops / (ms * 1e-3) / 1e9;
                beyond_peak |= gflops > self.peak_gflops;
                (
                    format!("{gflops:.1}"),
                    format!("{:.0}% peak", 100.0 * gflops / self.peak_gflops),
                )
            } else {
                let gbs = r.bytes / (ms * 1e-3) / 1e9;
                (
                    "-".to_string(),
                    format!("{gbs:.1} GB/s {:.0}%", 100.0 * gbs / self.bandwidth_gbs),
                )
            };
            println!(
                "  {:<18} {:<14} {:<16} {:>9.3} {:>9.3} {:>5.1}% {:>9} {:>16}",
                r.label,
                r.kind,
                format!("{:?}", r.shape),
                r.fwd_ms,
                r.bwd_ms,
                100.0 * ms / total_ms,
                rate,
                fraction
            );
        }
        if !self.inference {
            for (name, ms) in [("loss", self.loss_ms), ("optimizer", self.optimizer_ms)] {
                println!(
                    "  {:<18} {:<14} {:<16} {:>9.3} {:>9} {:>5.1}%",
                    name,
                    "",
                    "",
                    ms,
                    "",
                    100.0 * ms / total_ms
                );
            }
        }
        let accounted: f64 = self.rows.iter().map(|r| r.fwd_ms + r.bwd_ms).sum::<f64>()
            + self.loss_ms
            + self.optimizer_ms;
        println!(
            "  {:<18} {:<14} {:<16} {:>9.3} {:>9} {:>5.1}%",
            "other (data, glue)",
            "",
            "",
            (total_ms - accounted).max(0.0),
            "",
            100.0 * (total_ms - accounted).max(0.0) / total_ms
        );
        if beyond_peak {
            println!(
                "  (GFLOP/s count the direct method's multiply-adds; 3×3 stride-1 layers with 16+ channels run \
                 Winograd F(4×4, 3×3), which needs about a quarter of them, so they can pass the peak)"
            );
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "model": self.model,
            "batch": self.batch,
            "threads": self.threads,
            "isa": self.isa.to_string(),
            "layout": self.layout.name(),
            "mode": if self.inference { "inference" } else { "training" },
            "steps": self.steps,
            "images_per_sec": self.images_per_sec,
            "step_ms_median": self.step_ms,
            "step_ms_p10": self.step_ms_p10,
            "step_ms_p90": self.step_ms_p90,
            "model_gflop_per_step": self.model_flops / 1e9,
            "fraction_of_peak": self.fraction_of_peak(),
            "peak_gflops": self.peak_gflops,
            "bandwidth_gbs_copy": self.bandwidth_gbs,
            "peak_rss_bytes": self.peak_rss_bytes,
            "buffer_bytes": self.buffer_bytes,
            "params": self.params,
            "loss_ms": self.loss_ms,
            "optimizer_ms": self.optimizer_ms,
            "layers": self.rows.iter().map(|r| {
                let ms = r.fwd_ms + r.bwd_ms;
                json!({
                    "name": r.label,
                    "kind": r.kind,
                    "output_shape": r.shape,
                    "fwd_ms": r.fwd_ms,
                    "bwd_ms": r.bwd_ms,
                    "gflops": if ms > 0.0 { r.flops / (ms * 1e-3) / 1e9 } else { 0.0 },
                    "gbs": if ms > 0.0 { r.bytes / (ms * 1e-3) / 1e9 } else { 0.0 },
                })
            }).collect::<Vec<_>>(),
        })
    }
}

/// The process's peak resident set size (Linux `VmHWM`), if it can be read.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Writes the recorded passes as Chrome trace events (complete events, microseconds).
fn write_trace(path: &std::path::Path, graph: &Graph, measured: &Measured) -> std::io::Result<()> {
    let labels: Vec<String> = graph.nodes().into_iter().map(|n| n.label).collect();
    let mut events: Vec<serde_json::Value> = graph
        .events()
        .iter()
        .map(|e| {
            json!({
                "name": labels[e.node],
                "cat": if e.backward { "backward" } else { "forward" },
                "ph": "X",
                "ts": e.start * 1e6,
                "dur": e.seconds * 1e6,
                "pid": 1,
                "tid": 1,
                "args": { "pass": if e.backward { "backward" } else { "forward" } },
            })
        })
        .collect();
    for &(name, start, seconds) in &measured.extra_events {
        events.push(json!({
            "name": name, "cat": name, "ph": "X",
            "ts": start * 1e6, "dur": seconds * 1e6, "pid": 1, "tid": 1,
        }));
    }
    let trace = json!({ "traceEvents": events, "displayTimeUnit": "ms" });
    std::fs::write(
        path,
        serde_json::to_string(&trace).map_err(std::io::Error::other)?,
    )
}
