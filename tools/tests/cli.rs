//! The `axonal` binary as a user runs it.

use std::process::Command;

fn axonal(args: &[&str], isa_env: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_axonal"));
    cmd.args(args);
    match isa_env {
        Some(value) => cmd.env("AXONAL_ISA", value),
        None => cmd.env_remove("AXONAL_ISA"),
    };
    cmd.output().expect("the axonal binary runs")
}

#[test]
fn info_json_has_the_documented_keys_with_measured_values() {
    let out = axonal(&["info", "--json", "--quick"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for key in [
        "isa",
        "isa_available",
        "threads",
        "l1d_bytes",
        "l2_bytes",
        "l3_bytes",
        "peak_gflops_1t",
        "peak_gflops_all",
        "bandwidth_gbs_read",
        "bandwidth_gbs_copy",
    ] {
        assert!(info.get(key).is_some(), "missing key {key} in {info}");
    }
    for key in [
        "peak_gflops_1t",
        "peak_gflops_all",
        "bandwidth_gbs_read",
        "bandwidth_gbs_copy",
    ] {
        let value = info[key].as_f64().unwrap_or(0.0);
        assert!(value > 0.0, "{key} = {value}");
    }
    assert!(info["isa_available"]
        .as_array()
        .is_some_and(|a| a.iter().any(|i| i == "scalar")));
}

#[test]
fn forcing_each_available_isa_is_reported() {
    let out = axonal(&["info", "--list-isa"], None);
    assert!(out.status.success());
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(listed.lines().any(|l| l == "scalar"), "{listed}");
    for isa in listed.lines() {
        let out = axonal(&["info", "--json", "--quick", "--threads", "1"], Some(isa));
        assert!(
            out.status.success(),
            "{isa}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(info["isa"], isa);
    }
}

#[test]
fn an_unknown_isa_is_a_clear_error_not_a_crash() {
    let out = axonal(&["info", "--list-isa"], Some("sse9"));
    // Listing what the CPU runs does not depend on the selection.
    assert!(out.status.success());

    let out = axonal(&["info", "--quick"], Some("sse9"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sse9") && err.contains("AXONAL_ISA"), "{err}");

    let out = axonal(&["info", "--quick", "--isa", "avx9000"], None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("avx9000") && err.contains("scalar, neon, avx2"),
        "{err}"
    );
}

#[test]
fn zero_threads_is_rejected() {
    let out = axonal(&["info", "--quick", "--threads", "0"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"));
}

#[test]
fn profile_json_has_the_documented_keys_and_a_trace_opens_as_json() {
    let trace = std::env::temp_dir().join(format!("axonal-trace-{}.json", std::process::id()));
    let out = axonal(
        &[
            "profile",
            "--model",
            "mlp",
            "--batch",
            "8",
            "--steps",
            "3",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--json",
            "--trace",
            trace.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for key in [
        "model",
        "batch",
        "threads",
        "images_per_sec",
        "step_ms_median",
        "peak_rss_bytes",
        "layers",
    ] {
        assert!(report.get(key).is_some(), "missing key {key} in {report}");
    }
    assert!(report["images_per_sec"].as_f64().unwrap() > 0.0);
    let layers = report["layers"].as_array().unwrap();
    assert!(!layers.is_empty());
    for layer in layers {
        for key in ["name", "fwd_ms", "bwd_ms", "gflops"] {
            assert!(layer.get(key).is_some(), "missing {key} in {layer}");
        }
    }
    let events: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let events = events["traceEvents"].as_array().unwrap();
    assert!(events.iter().any(|e| e["cat"] == "backward"));
    assert!(events
        .iter()
        .all(|e| e["ph"] == "X" && e["dur"].as_f64().is_some()));
    std::fs::remove_file(trace).unwrap();
}

#[test]
fn bad_profile_and_train_flags_are_clear_errors() {
    for (args, says) in [
        (&["profile", "--model", "vgg"][..], "unknown model"),
        (&["profile", "--batch", "0"][..], "--batch"),
        (&["profile", "--threads", "0"][..], "--threads"),
        (&["profile", "--isa", "sse9"][..], "--isa"),
        (&["profile", "--layout", "nwhc"][..], "--layout"),
        (&["train", "--optimizer", "lbfgs"][..], "unknown optimizer"),
        (&["train", "--lr-schedule", "weird"][..], "--lr-schedule"),
        (&["train", "--dataset", "cifar"][..], "unknown dataset"),
        (
            &["train", "--data-dir", "/nonexistent/mnist"][..],
            "/nonexistent/mnist",
        ),
    ] {
        let out = axonal(args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn train_reads_an_mnist_directory_and_resumes_from_its_checkpoint() {
    // A tiny MNIST-style directory: 32 training and 8 test images of 28 × 28.
    let dir = std::env::temp_dir().join(format!("axonal-cli-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, dims: &[u32], data: Vec<u8>| {
        let mut bytes = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(&data);
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let pixels = |n: usize| {
        (0..n * 784)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>()
    };
    let labels = |n: usize| (0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>();
    write("train-images-idx3-ubyte", &[32, 28, 28], pixels(32));
    write("train-labels-idx1-ubyte", &[32], labels(32));
    write("t10k-images-idx3-ubyte", &[8, 28, 28], pixels(8));
    write("t10k-labels-idx1-ubyte", &[8], labels(8));
    let checkpoint = dir.join("ckpt.safetensors");
    let plot = dir.join("curves.svg");
    let d = dir.to_str().unwrap();
    let base = [
        "train",
        "--data-dir",
        d,
        "--model",
        "mlp",
        "--batch",
        "8",
        "--threads",
        "1",
    ];
    let out = axonal(
        &[
            &base[..],
            &[
                "--epochs",
                "1",
                "--json",
                "--checkpoint",
                checkpoint.to_str().unwrap(),
                "--plot",
                plot.to_str().unwrap(),
            ],
        ]
        .concat(),
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["epoch"], 1);
    assert!(line["test_accuracy"].as_f64().is_some());
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
    let out = axonal(
        &[
            &base[..],
            &[
                "--epochs",
                "1",
                "--json",
                "--resume",
                checkpoint.to_str().unwrap(),
            ],
        ]
        .concat(),
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["epoch"], 2, "resuming continues the epoch count");
    std::fs::remove_dir_all(&dir).unwrap();
}
