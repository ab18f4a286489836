//! Save → load gives identical predictions and an identical next training step; bad
//! files are errors that leave the graph as it was.

use axonal::checkpoint::{load, save, CheckpointInfo};
use axonal::data::{Augment, Dataset};
use axonal::kernels::optim::Adam;
use axonal::models;
use axonal::optim::{Method, Optimizer};
use axonal::train::{train_step, Batch};
use axonal::{Context, Graph, Rng};

fn params(graph: &mut Graph) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    graph.visit_params(&mut |p| out.push(p.value.clone()));
    out
}

fn step(graph: &mut Graph, opt: &mut Optimizer, data: &Dataset) {
    let model_loss = axonal::Loss::SoftmaxCrossEntropy;
    let indices: Vec<usize> = (0..8).collect();
    let (mut rng, mut batch) = (Rng::new(9), Batch::default());
    train_step(
        graph,
        model_loss,
        opt,
        &Context::default(),
        data,
        &indices,
        &Augment::default(),
        &mut rng,
        &mut batch,
    )
    .unwrap();
}

fn predict(graph: &mut Graph, data: &Dataset) -> Vec<f32> {
    let indices: Vec<usize> = (0..8).collect();
    let input = graph.input_mut(8).unwrap();
    data.fill(
        &indices,
        input,
        &mut Vec::new(),
        &Augment::default(),
        &mut Rng::new(0),
    )
    .unwrap();
    let ctx = Context {
        train: false,
        ..Context::default()
    };
    graph.forward(&ctx).unwrap().data().to_vec()
}

#[test]
fn save_then_load_resumes_exactly() {
    let dir = std::env::temp_dir().join(format!("axonal-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seed_cnn.safetensors");
    let data = Dataset::synthetic(8, &[1, 28, 28], 10, 3);
    let adam = || Optimizer::new(Method::Adam(Adam::new(1e-3))).unwrap();

    let mut a = models::seed_cnn(&mut Rng::new(1)).unwrap();
    let mut opt_a = adam();
    step(&mut a, &mut opt_a, &data);
    step(&mut a, &mut opt_a, &data);
    let info = CheckpointInfo {
        model: "seed_cnn".into(),
        epoch: 1,
        optimizer_steps: 0,
    };
    save(&path, &mut a, Some(&mut opt_a), &info).unwrap();

    let mut b = models::seed_cnn(&mut Rng::new(2)).unwrap();
    let mut opt_b = adam();
    let loaded = load(&path, &mut b, Some(&mut opt_b)).unwrap();
    assert_eq!((loaded.epoch, loaded.optimizer_steps), (1, 2));
    assert_eq!(predict(&mut a, &data), predict(&mut b, &data));
    step(&mut a, &mut opt_a, &data);
    step(&mut b, &mut opt_b, &data);
    assert_eq!(params(&mut a), params(&mut b), "the next step differs");

    // A checkpoint of another model does not fit, and changes nothing.
    let mlp_path = dir.join("mlp.safetensors");
    let mut mlp = models::mlp(&mut Rng::new(3)).unwrap();
    save(&mlp_path, &mut mlp, None, &CheckpointInfo::default()).unwrap();
    let before = params(&mut b);
    let err = load(&mlp_path, &mut b, None).unwrap_err().to_string();
    assert!(err.contains("conv1.weight"), "{err}");
    assert_eq!(params(&mut b), before);

    // A truncated file and a missing file are errors naming the file.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(&cut, &mut b, None).unwrap_err().to_string();
    assert!(err.contains("cut.safetensors"), "{err}");
    assert!(load(&dir.join("missing"), &mut b, None).is_err());
    assert_eq!(params(&mut b), before);

    // Saving into a directory that does not exist fails and leaves no file behind.
    let nowhere = dir.join("no-such-dir").join("x.safetensors");
    assert!(save(&nowhere, &mut b, None, &info).is_err());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
