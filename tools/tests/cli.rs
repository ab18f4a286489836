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
