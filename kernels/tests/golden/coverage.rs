//! Every golden file belongs to a family that one of these modules tests.

use crate::support::golden_dir;

/// File-name prefixes and the module that tests them.
const FAMILIES: [(&str, &str); 9] = [
    ("act_", "activation"),
    ("batchnorm_", "batchnorm"),
    ("conv2d_", "conv"),
    ("linear_", "linear"),
    ("loss_", "loss"),
    ("optim_", "optim"),
    ("pool_", "pool"),
    ("rnn_", "rnn"),
    ("train_step_", "train_step"),
];

#[test]
fn every_golden_file_has_a_test() {
    let dir = golden_dir();
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    assert!(!names.is_empty(), "no golden file in {}", dir.display());
    let untested: Vec<&String> = names
        .iter()
        .filter(|n| !FAMILIES.iter().any(|(prefix, _)| n.starts_with(prefix)))
        .collect();
    assert!(
        untested.is_empty(),
        "golden files no test reads: {untested:?}"
    );
}
