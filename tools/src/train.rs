//! `axonal train`: train a model on real data, with progress, per-epoch summaries,
//! checkpoints and a plot of the curves.

use crate::plot::{line_chart, Series};
use axonal::checkpoint::{self, CheckpointInfo};
use axonal::data::{load_mnist_dir, Augment, FASHION_MNIST_DIR};
use axonal::models::{self, MODEL_NAMES};
use axonal::optim::{Decay, EarlyStopping, Method, Optimizer, Schedule};
use axonal::train::{evaluate, train_epoch};
use axonal::{Context, Rng};
use axonal_kernels::arch::Isa;
use axonal_kernels::optim::{Adagrad, Adam, RmsProp, Sgd};
use axonal_kernels::probe;
use axonal_kernels::Parallelism;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct TrainArgs {
    /// The dataset: fashion-mnist (Debian's dataset-fashion-mnist package) or any
    /// MNIST-style directory given with --data-dir.
    #[arg(long, default_value = "fashion-mnist")]
    dataset: String,
    /// Directory with train-/t10k- images and labels (IDX, raw or .gz).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The model: seed_cnn or mlp (the image models).
    #[arg(long, default_value = "seed_cnn")]
    model: String,
    #[arg(long, default_value_t = 3)]
    epochs: u64,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// adam, adamw, sgd, rmsprop, adagrad.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Learning rate (default: 1e-3 for adam/adamw/rmsprop, 0.01 for sgd/adagrad).
    #[arg(long)]
    lr: Option<f32>,
    /// Learning-rate schedule after the warm-up: constant, step:EVERY:GAMMA (epochs),
    /// or cosine (to 0 over the run).
    #[arg(long, default_value = "constant")]
    lr_schedule: String,
    /// Epochs of linear learning-rate warm-up from 0.
    #[arg(long, default_value_t = 0)]
    warmup_epochs: u64,
    /// Clip the gradients' global L2 norm to this value.
    #[arg(long)]
    clip_norm: Option<f32>,
    /// SGD / RMSprop momentum.
    #[arg(long, default_value_t = 0.0)]
    momentum: f32,
    /// Weight decay (L2 for sgd/adam/rmsprop/adagrad, decoupled for adamw).
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Threads (default: every hardware thread).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train on the first N training images only.
    #[arg(long)]
    limit: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Standardize pixels as torchvision's Normalize(mean, std), given as MEAN,STD
    /// (pixels are first scaled to [0, 1] as ToTensor does); "none" keeps [0, 1].
    #[arg(long, default_value = "0.5,0.5")]
    normalize: String,
    /// Hold out this fraction of the training set for validation (0: none).
    #[arg(long, default_value_t = 0.0)]
    validation: f64,
    /// Stop when validation accuracy has not improved for this many epochs.
    #[arg(long)]
    patience: Option<usize>,
    /// Random crops of the zero-padded image (padding in pixels).
    #[arg(long, default_value_t = 0)]
    crop_padding: usize,
    /// Random horizontal flips.
    #[arg(long)]
    flip: bool,
    /// Save a checkpoint here after each epoch.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Resume from this checkpoint (weights, optimizer state, epoch).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Draw the loss and accuracy curves to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print one JSON object per epoch instead of text.
    #[arg(long)]
    json: bool,
    /// Force a kernel path (scalar, neon, avx2).
    #[arg(long)]
    isa: Option<String>,
    /// Memory layout of the activations: nchw, nhwc (default: the model's faster one).
    #[arg(long)]
    layout: Option<String>,
}

fn method(args: &TrainArgs) -> Result<Method, String> {
    let lr = |default: f32| args.lr.unwrap_or(default);
    Ok(match args.optimizer.as_str() {
        "adam" => Method::Adam(Adam {
            weight_decay: args.weight_decay,
            ..Adam::new(lr(1e-3))
        }),
        "adamw" => Method::Adam(Adam::adamw(lr(1e-3), args.weight_decay)),
        "sgd" => Method::Sgd(Sgd {
            momentum: args.momentum,
            weight_decay: args.weight_decay,
            ..Sgd::new(lr(0.01))
        }),
        "rmsprop" => Method::RmsProp(RmsProp {
            momentum: args.momentum,
            weight_decay: args.weight_decay,
            ..RmsProp::new(lr(1e-3))
        }),
        "adagrad" => Method::Adagrad(Adagrad {
            weight_decay: args.weight_decay,
            ..Adagrad::new(lr(0.01))
        }),
        other => {
            return Err(format!(
                "unknown optimizer {other:?}; known: adam, adamw, sgd, rmsprop, adagrad"
            ))
        }
    })
}

/// The learning-rate schedule of `--lr-schedule` and `--warmup-epochs`, in steps.
fn schedule(args: &TrainArgs, steps_per_epoch: u64) -> Result<Schedule, String> {
    let parts: Vec<&str> = args.lr_schedule.split(':').collect();
    let decay = match parts[..] {
        ["constant"] => Decay::Constant,
        ["cosine"] => Decay::Cosine {
            total: args.epochs.saturating_sub(args.warmup_epochs) * steps_per_epoch,
            min_lr: 0.0,
        },
        ["step", every, gamma] => {
            let every: u64 = every
                .parse()
                .map_err(|e| format!("--lr-schedule step EVERY {every:?}: {e}"))?;
            let gamma: f32 = gamma
                .parse()
                .map_err(|e| format!("--lr-schedule step GAMMA {gamma:?}: {e}"))?;
            if every == 0 {
                return Err("--lr-schedule step: EVERY must be at least 1 epoch".into());
            }
            Decay::Step {
                every: every * steps_per_epoch,
                gamma,
            }
        }
        _ => {
            return Err(format!(
                "--lr-schedule {:?}: use constant, cosine or step:EVERY:GAMMA",
                args.lr_schedule
            ))
        }
    };
    Ok(Schedule {
        warmup_steps: args.warmup_epochs * steps_per_epoch,
        decay,
    })
}

/// Per-epoch figures, for the plot.
#[derive(Default)]
struct Curves {
    train_loss: Vec<(f64, f64)>,
    train_acc: Vec<(f64, f64)>,
    test_acc: Vec<(f64, f64)>,
}

pub fn run(args: &TrainArgs) -> Result<(), String> {
    if let Some(name) = &args.isa {
        let isa: Isa = name.parse().map_err(|e| format!("--isa: {e}"))?;
        Isa::force(Some(isa)).map_err(|e| format!("--isa: {e}"))?;
    }
    if args.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    let threads = match args.threads {
        Some(0) => return Err("--threads must be at least 1".into()),
        Some(n) => n,
        None => probe::available_threads(),
    };
    let par = if threads == 1 {
        Parallelism::Sequential
    } else {
        Parallelism::Threads(threads)
    };
    if !MODEL_NAMES.contains(&args.model.as_str()) {
        return Err(format!(
            "unknown model {:?}; known: {}",
            args.model,
            MODEL_NAMES.join(", ")
        ));
    }
    // Bad settings are reported before any data is read.
    schedule(args, 1)?;
    method(args)?;
    let dir = match (&args.data_dir, args.dataset.as_str()) {
        (Some(dir), _) => dir.clone(),
        (None, "fashion-mnist") => PathBuf::from(FASHION_MNIST_DIR),
        (None, other) => {
            return Err(format!(
                "unknown dataset {other:?}: use fashion-mnist, or --data-dir for an MNIST-style directory"
            ))
        }
    };
    let (train, test) = load_mnist_dir(&dir).map_err(|e| {
        format!("{e}\n(Fashion-MNIST comes with Debian's dataset-fashion-mnist package)")
    })?;
    let mut train = args.limit.map_or(train.clone(), |n| train.truncated(n));
    let mut test = args.test_limit.map_or(test.clone(), |n| test.truncated(n));
    if args.normalize != "none" {
        let parsed: Vec<f32> = args
            .normalize
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--normalize {:?}: {e}", args.normalize))?;
        let [mean, std] = parsed[..] else {
            return Err(format!(
                "--normalize {:?}: give MEAN,STD or none",
                args.normalize
            ));
        };
        for set in [&mut train, &mut test] {
            set.normalize(mean, std).map_err(|e| e.to_string())?;
        }
    }
    let (train, validation) = if args.validation > 0.0 {
        let (t, v) = train
            .split(args.validation, args.seed)
            .map_err(|e| e.to_string())?;
        (t, Some(v))
    } else {
        (train, None)
    };
    let mut model = models::build(&args.model, args.seed).map_err(|e| e.to_string())?;
    if let Some(layout) = &args.layout {
        model.graph.set_layout(crate::parse_layout(layout)?);
    }
    if model.graph.sample_shape() != train.sample_shape() {
        return Err(format!(
            "model {} takes samples of shape {:?}, the dataset has {:?}",
            args.model,
            model.graph.sample_shape(),
            train.sample_shape()
        ));
    }
    let steps_per_epoch = train.len().div_ceil(args.batch) as u64;
    let mut optimizer = Optimizer::new(method(args)?)
        .map_err(|e| e.to_string())?
        .schedule(schedule(args, steps_per_epoch)?);
    if let Some(max) = args.clip_norm {
        optimizer = optimizer.clip_norm(max).map_err(|e| e.to_string())?;
    }
    let mut first_epoch = 0;
    if let Some(path) = &args.resume {
        let info = checkpoint::load(path, &mut model.graph, Some(&mut optimizer))
            .map_err(|e| e.to_string())?;
        first_epoch = info.epoch;
        if !args.json {
            println!(
                "resumed {} after epoch {} ({} optimizer steps)",
                path.display(),
                info.epoch,
                info.optimizer_steps
            );
        }
    }
    let augment = Augment {
        crop_padding: args.crop_padding,
        flip: args.flip,
    };
    let ctx = Context {
        par,
        train: true,
        step: 0,
    };
    if !args.json {
        println!(
            "training {} on {} ({} training, {} test images), batch {}, {} thread{}, {}",
            args.model,
            dir.display(),
            train.len(),
            test.len(),
            args.batch,
            threads,
            if threads == 1 { "" } else { "s" },
            args.optimizer
        );
    }
    // Each epoch's shuffle depends on the seed and the epoch only, so a resumed run
    // sees the batches an uninterrupted run would.
    let mut stopper = args.patience.map(|p| EarlyStopping::new(p, true));
    let mut curves = Curves::default();
    for epoch in first_epoch..first_epoch + args.epochs {
        let mut rng = Rng::new(args.seed ^ (epoch + 1).wrapping_mul(0x9E37_79B9));
        let batches = train.len().div_ceil(args.batch) as u64;
        let bar = if args.json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(batches)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
            )
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}", epoch + 1));
        let start = Instant::now();
        let (mut images, mut recent) = (0usize, 0.0f32);
        let stats = train_epoch(
            &mut model.graph,
            model.loss,
            &mut optimizer,
            &ctx,
            &train,
            args.batch,
            &augment,
            &mut rng,
            &mut |step, loss, n| {
                images += n;
                recent = if step == 0 {
                    loss
                } else {
                    0.95 * recent + 0.05 * loss
                };
                if step % 10 == 0 {
                    let rate = images as f64 / start.elapsed().as_secs_f64();
                    bar.set_message(format!("loss {recent:.4}, {rate:.0} img/s"));
                }
                bar.inc(1);
            },
        )
        .map_err(|e| e.to_string())?;
        let seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let test_stats =
            evaluate(&mut model.graph, model.loss, par, &test, 256).map_err(|e| e.to_string())?;
        let val_stats = match &validation {
            Some(v) => Some(
                evaluate(&mut model.graph, model.loss, par, v, 256).map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let images_per_sec = stats.samples as f64 / seconds;
        let e = (epoch + 1) as f64;
        curves.train_loss.push((e, stats.loss));
        curves.train_acc.push((e, stats.accuracy));
        curves.test_acc.push((e, test_stats.accuracy));
        if args.json {
            println!(
                "{}",
                json!({
                    "epoch": epoch + 1,
                    "train_loss": stats.loss,
                    "train_accuracy": stats.accuracy,
                    "test_loss": test_stats.loss,
                    "test_accuracy": test_stats.accuracy,
                    "validation_accuracy": val_stats.map(|v| v.accuracy),
                    "images_per_sec": images_per_sec,
                    "seconds": seconds,
                })
            );
        } else {
            let val = val_stats
                .map(|v| format!(", validation {:.2}%", 100.0 * v.accuracy))
                .unwrap_or_default();
            println!(
                "epoch {}: loss {:.4}, train {:.2}%, test {:.2}%{val}, {:.0} images/s ({:.1} s)",
                epoch + 1,
                stats.loss,
                100.0 * stats.accuracy,
                100.0 * test_stats.accuracy,
                images_per_sec,
                seconds
            );
        }
        if let Some(path) = &args.checkpoint {
            let info = CheckpointInfo {
                model: args.model.clone(),
                epoch: epoch + 1,
                optimizer_steps: optimizer.steps(),
            };
            checkpoint::save(path, &mut model.graph, Some(&mut optimizer), &info)
                .map_err(|e| e.to_string())?;
        }
        if let (Some(stop), Some(v)) = (&mut stopper, val_stats) {
            if stop.update(v.accuracy) {
                if !args.json {
                    println!("early stop: validation accuracy has not improved");
                }
                break;
            }
        }
    }
    if let Some(path) = &args.plot {
        let svg = line_chart(
            &format!("{} on {}", args.model, args.dataset),
            "epoch",
            &[
                Series::new("train loss", &curves.train_loss),
                Series::new("train accuracy", &curves.train_acc),
                Series::new("test accuracy", &curves.test_acc),
            ],
        );
        std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
