//! Finite-difference checks of every layer's backward pass, alone and inside graphs
//! (including a residual DAG whose gradients meet at a fan-out).
//!
//! The loss is L = Σ y·r for a fixed random r, so ∂L/∂y = r. Each checked parameter
//! value is moved by ±h and (L₊ − L₋)/2h, summed in f64, is compared with the gradient
//! the graph computed. The passes run in f32, so h is large enough for the difference
//! to rise above f32 rounding, and inputs are random so that no ReLU kink or max-pool
//! tie lies within h of a checked point except by rare chance.

use axonal::kernels::eltwise::Activation;
use axonal::layer::{Act, Add, AvgPool2d, Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool2d};
use axonal::{Context, Graph, GraphBuilder, Rng, Sequential};

const H: f32 = 2e-3;

/// What the profile shows for each node after fusion.
fn labels(graph: &Graph) -> Vec<String> {
    graph.nodes().into_iter().map(|n| n.label).collect()
}

fn fill(graph: &mut Graph, batch: usize, rng: &mut Rng) {
    for v in graph.input_mut(batch).unwrap() {
        *v = rng.uniform_in(-1.0, 1.0);
    }
}

fn loss(graph: &mut Graph, ctx: &Context, r: &[f32]) -> f64 {
    let y = graph.forward(ctx).unwrap();
    y.data()
        .iter()
        .zip(r)
        .map(|(&y, &r)| f64::from(y) * f64::from(r))
        .sum()
}

/// Checks up to `per_param` values of every parameter of `graph` against central
/// differences.
fn check(mut graph: Graph, batch: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let ctx = Context::default();
    fill(&mut graph, batch, &mut rng);
    let out_len = graph.forward(&ctx).unwrap().len();
    let r: Vec<f32> = (0..out_len).map(|_| rng.uniform_in(-1.0, 1.0)).collect();
    graph.output_grad_mut().copy_from_slice(&r);
    graph.backward(&ctx).unwrap();
    let mut analytic = Vec::new();
    graph.visit_params(&mut |p| analytic.push((p.name.clone(), p.grad.clone())));
    assert!(!analytic.is_empty(), "the graph has no parameters to check");
    let base = loss(&mut graph, &ctx, &r);
    let (mut checked, mut kinks) = (0, 0);
    for (index, (name, grads)) in analytic.iter().enumerate() {
        let picks: Vec<usize> = (0..grads.len().min(12))
            .map(|_| rng.below(grads.len()))
            .collect();
        for &at in &picks {
            let mut sides = [0.0; 2];
            for (side, sign) in sides.iter_mut().zip([1.0f32, -1.0]) {
                set(&mut graph, index, at, sign * H);
                *side = loss(&mut graph, &ctx, &r);
                set(&mut graph, index, at, -sign * H);
            }
            let h = f64::from(H);
            let numeric = (sides[0] - sides[1]) / (2.0 * h);
            let tol = 2e-3 + 1e-2 * numeric.abs();
            // One-sided differences that disagree mean a ReLU kink or a max-pool tie
            // lies within h: the function is not differentiable there at this scale.
            let (forward, backward) = ((sides[0] - base) / h, (base - sides[1]) / h);
            if (forward - backward).abs() > tol {
                kinks += 1;
                continue;
            }
            checked += 1;
            let got = f64::from(grads[at]);
            assert!(
                (got - numeric).abs() <= tol,
                "{name}[{at}]: backward {got:e}, finite difference {numeric:e}"
            );
        }
    }
    assert!(
        kinks * 5 <= checked,
        "{kinks} kinks against {checked} smooth points"
    );
}

/// Adds `delta` to value `at` of parameter number `index`.
fn set(graph: &mut Graph, index: usize, at: usize, delta: f32) {
    let mut i = 0;
    graph.visit_params(&mut |p| {
        if i == index {
            p.value[at] += delta;
        }
        i += 1;
    });
}

#[test]
fn linear_with_each_fused_activation() {
    for (seed, act) in [
        Activation::Identity,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::LeakyRelu { slope: 0.1 },
        Activation::Elu { alpha: 1.0 },
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = Rng::new(seed as u64);
        let graph = Sequential::new(&[7])
            .push("fc1", Linear::new(7, 5, &mut rng))
            .push("act", Act(act))
            .push("fc2", Linear::new(5, 3, &mut rng))
            .build()
            .unwrap();
        check(graph, 4, seed as u64);
    }
}

#[test]
fn activations_that_need_their_input_run_unfused() {
    for act in [Activation::Gelu, Activation::GeluTanh, Activation::Silu] {
        let mut rng = Rng::new(3);
        let graph = Sequential::new(&[6])
            .push("fc1", Linear::new(6, 5, &mut rng))
            .push("act", Act(act))
            .push("fc2", Linear::new(5, 2, &mut rng))
            .build()
            .unwrap();
        assert_eq!(labels(&graph), ["fc1", "act", "fc2"]);
        check(graph, 3, 4);
    }
}

#[test]
fn convolutions_with_stride_padding_dilation_and_groups() {
    let configs = [
        Conv2d::builder(3, 4, 3),
        Conv2d::builder(3, 4, 3).stride(2).padding(1),
        Conv2d::builder(4, 6, 3).dilation(2).padding(2).groups(2),
        Conv2d::builder(4, 4, 3).groups(4).padding(1).bias(false),
        Conv2d::builder(3, 5, 1).stride(2),
    ];
    for (seed, builder) in configs.into_iter().enumerate() {
        let mut rng = Rng::new(seed as u64 + 10);
        let conv = builder.build(&mut rng);
        let channels = [3, 3, 4, 4, 3][seed];
        let graph = Sequential::new(&[channels, 7, 6])
            .push("conv", conv)
            .push("relu", Act::relu())
            .build()
            .unwrap();
        check(graph, 2, seed as u64);
    }
}

#[test]
fn pooling_layers_pass_gradients_back() {
    let mut rng = Rng::new(20);
    let graph = Sequential::new(&[2, 9, 8])
        .push("conv", Conv2d::builder(2, 3, 2).padding(1).build(&mut rng))
        .push("max", MaxPool2d::with(3, 2, 1))
        .push("avg", AvgPool2d::with(2, 1, 1, false))
        .push("gap", GlobalAvgPool::new())
        .push("fc", Linear::new(3, 2, &mut rng))
        .build()
        .unwrap();
    check(graph, 3, 21);
    let mut rng = Rng::new(22);
    let graph = Sequential::new(&[1, 8, 8])
        .push("conv", Conv2d::new(1, 2, 3, &mut rng))
        .push("pool", MaxPool2d::new(2))
        .push("avg", AvgPool2d::with(3, 2, 1, true))
        .push("flatten", Flatten::new())
        .push("fc", Linear::new(8, 3, &mut rng))
        .build()
        .unwrap();
    check(graph, 2, 23);
}

#[test]
fn a_residual_dag_sums_the_gradients_of_both_branches() {
    let mut rng = Rng::new(30);
    let mut g = GraphBuilder::new(&[3, 6, 6]);
    let stem = g
        .add(
            "stem",
            Conv2d::builder(3, 4, 3).padding(1).build(&mut rng),
            &[g.input()],
        )
        .unwrap();
    let stem_relu = g.add("stem_relu", Act::relu(), &[stem]).unwrap();
    let branch = g
        .add(
            "branch",
            Conv2d::builder(4, 4, 3).padding(1).build(&mut rng),
            &[stem_relu],
        )
        .unwrap();
    let sum = g.add("add", Add, &[stem_relu, branch]).unwrap();
    let relu = g.add("relu", Act::relu(), &[sum]).unwrap();
    let gap = g.add("gap", GlobalAvgPool::new(), &[relu]).unwrap();
    let fc = g.add("fc", Linear::new(4, 3, &mut rng), &[gap]).unwrap();
    let graph = g.build(fc).unwrap();
    // stem has one reader, so its ReLU is fused, though the ReLU's output has two.
    assert_eq!(
        labels(&graph),
        ["stem+stem_relu", "branch", "add", "relu", "gap", "fc"]
    );
    check(graph, 2, 31);

    // A node read twice by the same layer.
    let mut rng = Rng::new(32);
    let mut g = GraphBuilder::new(&[5]);
    let fc1 = g
        .add("fc1", Linear::new(5, 4, &mut rng), &[g.input()])
        .unwrap();
    let double = g.add("double", Add, &[fc1, fc1]).unwrap();
    let fc2 = g
        .add("fc2", Linear::new(4, 2, &mut rng), &[double])
        .unwrap();
    check(g.build(fc2).unwrap(), 3, 33);
}

#[test]
fn the_graph_fuses_activations_into_their_producers() {
    let mut rng = Rng::new(40);
    let graph = axonal::models::seed_cnn(&mut rng).unwrap();
    assert_eq!(
        labels(&graph),
        [
            "conv1+relu1",
            "pool1",
            "conv2+relu2",
            "pool2",
            "conv3+relu3",
            "flatten",
            "fc1+relu4",
            "fc2"
        ]
    );
    // The whole seed CNN is checked against PyTorch in tests/train_step.rs: a finite
    // difference of conv1's bias moves 1352 pre-activations and crosses ReLU kinks.
}

#[test]
fn bad_wiring_and_shapes_are_errors() {
    let mut rng = Rng::new(50);
    let wrong_channels = Sequential::new(&[2, 5, 5])
        .push("conv", Conv2d::new(3, 4, 3, &mut rng))
        .build();
    assert!(wrong_channels.is_err());
    let too_big = Sequential::new(&[1, 2, 2])
        .push("conv", Conv2d::new(1, 1, 3, &mut rng))
        .build();
    assert!(too_big.is_err());
    let duplicate = Sequential::new(&[4])
        .push("fc", Linear::new(4, 4, &mut rng))
        .push("fc", Linear::new(4, 4, &mut rng))
        .build();
    assert!(duplicate.is_err());
    let mut g = GraphBuilder::new(&[4]);
    let a = g
        .add("a", Linear::new(4, 3, &mut rng), &[g.input()])
        .unwrap();
    let b = g
        .add("b", Linear::new(4, 2, &mut rng), &[g.input()])
        .unwrap();
    let sum = g.add("sum", Add, &[a, b]).unwrap();
    assert!(g.build(sum).is_err());
    let mut graph = Sequential::new(&[4])
        .push("fc", Linear::new(4, 4, &mut rng))
        .build()
        .unwrap();
    assert!(graph.input_mut(0).is_err());
}

#[test]
fn batch_norm_alone_and_fused_with_relu() {
    use axonal::layer::BatchNorm;
    let mut rng = Rng::new(60);
    let graph = Sequential::new(&[3, 5, 4])
        .push("conv", Conv2d::builder(3, 4, 3).padding(1).build(&mut rng))
        .push("bn", BatchNorm::new(4))
        .push("relu", Act::relu())
        .push("gap", GlobalAvgPool::new())
        .push("fc", Linear::new(4, 3, &mut rng))
        .build()
        .unwrap();
    assert_eq!(labels(&graph), ["conv", "bn+relu", "gap", "fc"]);
    check(graph, 3, 61);
    let mut rng = Rng::new(62);
    let graph = Sequential::new(&[6])
        .push("fc1", Linear::new(6, 5, &mut rng))
        .push("bn", BatchNorm::new(5))
        .push("tanh", Act(Activation::Tanh))
        .push("fc2", Linear::new(5, 2, &mut rng))
        .build()
        .unwrap();
    check(graph, 4, 63);
}

#[test]
fn a_relu_read_only_by_a_max_pool_hands_it_the_mask() {
    use axonal::layer::BatchNorm;
    // The pool masks its output gradient by its output > 0, and the ReLU's producer (a
    // first convolution, a later one, a batch norm) skips the mask: overlapping padded
    // windows and plain 2×2 ones.
    let mut rng = Rng::new(70);
    let graph = Sequential::new(&[2, 9, 8])
        .push("conv1", Conv2d::builder(2, 3, 3).padding(1).build(&mut rng))
        .push("relu1", Act::relu())
        .push("pool1", MaxPool2d::with(3, 2, 1))
        .push("conv2", Conv2d::builder(3, 4, 2).padding(1).build(&mut rng))
        .push("relu2", Act::relu())
        .push("pool2", MaxPool2d::new(2))
        .push("bn", BatchNorm::new(4))
        .push("relu3", Act::relu())
        .push("pool3", MaxPool2d::new(2))
        .push("flatten", Flatten::new())
        .push("fc", Linear::new(4, 3, &mut rng))
        .build()
        .unwrap();
    assert_eq!(
        labels(&graph),
        [
            "conv1+relu1",
            "pool1",
            "conv2+relu2",
            "pool2",
            "bn+relu3",
            "pool3",
            "flatten",
            "fc"
        ]
    );
    check(graph, 3, 71);
}

/// The NHWC graph computes what the NCHW graph computes (same weights, same NCHW input),
/// and its own gradients pass the finite-difference check.
///
/// The two layouts add in different orders, so results differ in the last bits; in
/// resnet_mini those differences are magnified where a gradient is a sum that cancels
/// almost exactly (the β gradient of a batch norm whose output feeds a convolution and
/// another batch norm: Σ dz over a channel is 0 before the ReLU mask), and every
/// gradient upstream inherits them. So gradients are compared by their relative L2
/// error: 1e-5 where nothing cancels (seed_cnn_bn), 1e-2 through resnet_mini's blocks.
#[test]
fn nhwc_graphs_match_nchw_graphs() {
    use axonal::kernels::Layout;
    for (name, batch, tolerance) in [("seed_cnn_bn", 3, 1e-5), ("resnet_mini", 2, 1e-2)] {
        let mut a = axonal::models::build(name, 7).unwrap().graph;
        let mut b = axonal::models::build(name, 7).unwrap().graph;
        b.set_layout(Layout::Nhwc);
        let mut rng = Rng::new(8);
        let n = a.input_mut(batch).unwrap().len();
        let x: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
        a.input_mut(batch).unwrap().copy_from_slice(&x);
        b.input_mut(batch).unwrap().copy_from_slice(&x);
        let ctx = Context::default();
        let ya = a.forward(&ctx).unwrap().data().to_vec();
        let yb = b.forward(&ctx).unwrap().data().to_vec();
        assert!(relative_l2(&ya, &yb) <= 1e-5, "{name}: outputs differ");
        let r: Vec<f32> = (0..ya.len()).map(|_| rng.uniform_in(-1.0, 1.0)).collect();
        for g in [&mut a, &mut b] {
            g.output_grad_mut().copy_from_slice(&r);
            g.backward(&ctx).unwrap();
        }
        let (mut ga, mut gb) = (Vec::new(), Vec::new());
        a.visit_params(&mut |p| ga.push((p.name.clone(), p.grad.clone())));
        b.visit_params(&mut |p| gb.push(p.grad.clone()));
        for ((pname, x), y) in ga.iter().zip(&gb) {
            // A convolution's bias before a batch norm has a zero gradient: only noise.
            if name == "seed_cnn_bn" && pname.ends_with("bias") && pname.starts_with("conv") {
                continue;
            }
            let err = relative_l2(x, y);
            assert!(
                err <= tolerance,
                "{name}: gradient of {pname} differs by {err:e}"
            );
        }
    }
    let mut rng = Rng::new(70);
    let mut graph = Sequential::new(&[3, 6, 5])
        .push("conv", Conv2d::builder(3, 4, 3).padding(1).build(&mut rng))
        .push("bn", axonal::layer::BatchNorm::new(4))
        .push("relu", Act::relu())
        .push("pool", MaxPool2d::with(2, 2, 1))
        .push("flatten", Flatten::new())
        .push("fc", Linear::new(4 * 4 * 3, 3, &mut rng))
        .build()
        .unwrap();
    graph.set_layout(Layout::Nhwc);
    check(graph, 2, 71);

    // A strided residual block with a projection, in NHWC, against finite differences.
    let mut rng = Rng::new(72);
    let mut g = GraphBuilder::new(&[3, 6, 6]);
    let c1 = g
        .add(
            "c1",
            Conv2d::builder(3, 4, 3)
                .stride(2)
                .padding(1)
                .build(&mut rng),
            &[g.input()],
        )
        .unwrap();
    let b1 = g
        .add("b1", axonal::layer::BatchNorm::new(4), &[c1])
        .unwrap();
    let r1 = g.add("r1", Act::relu(), &[b1]).unwrap();
    let proj = g
        .add(
            "proj",
            Conv2d::builder(3, 4, 1).stride(2).build(&mut rng),
            &[g.input()],
        )
        .unwrap();
    let sum = g.add("add", Add, &[r1, proj]).unwrap();
    let gap = g.add("gap", GlobalAvgPool::new(), &[sum]).unwrap();
    let fc = g.add("fc", Linear::new(4, 2, &mut rng), &[gap]).unwrap();
    let mut graph = g.build(fc).unwrap();
    graph.set_layout(Layout::Nhwc);
    check(graph, 3, 73);
}

/// ‖a − b‖ / ‖a‖ in f64.
fn relative_l2(a: &[f32], b: &[f32]) -> f64 {
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|e| e * e).sum::<f64>().sqrt();
    let diff = norm(&mut a.iter().zip(b).map(|(&p, &q)| f64::from(p) - f64::from(q)));
    diff / norm(&mut a.iter().map(|&p| f64::from(p))).max(1e-30)
}

/// Dropout's gradient with its mask held fixed (same training step), and its evaluation
/// mode is the identity.
#[test]
fn dropout_masks_the_gradient_it_masked_the_output_with() {
    use axonal::layer::Dropout;
    let mut rng = Rng::new(80);
    let graph = Sequential::new(&[6])
        .push("fc1", Linear::new(6, 16, &mut rng))
        .push("drop", Dropout::new(0.5, 3).unwrap())
        .push("fc2", Linear::new(16, 3, &mut rng))
        .build()
        .unwrap();
    check(graph, 4, 81);
    let mut graph = Sequential::new(&[4])
        .push("drop", Dropout::new(0.3, 1).unwrap())
        .build()
        .unwrap();
    graph.input_mut(2).unwrap().copy_from_slice(&[1.0; 8]);
    let eval = Context {
        train: false,
        ..Context::default()
    };
    assert_eq!(graph.forward(&eval).unwrap().data(), [1.0; 8]);
    let kept = graph.forward(&Context::default()).unwrap().data().to_vec();
    assert!(kept
        .iter()
        .all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
    assert!(Dropout::new(1.5, 0).is_err());
}

/// Clipping scales every gradient by max_norm / (‖g‖ + 1e-6) when the global norm is
/// above max_norm (PyTorch's clip_grad_norm_), and the L1 penalty adds l1·sign(p): one
/// SGD step (lr 1) then moves each weight by exactly that gradient.
#[test]
fn clipping_and_l1_change_the_step_as_pytorch_does() {
    use axonal::kernels::optim::Sgd;
    use axonal::optim::{Method, Optimizer};
    let build = || {
        let mut rng = Rng::new(90);
        Sequential::new(&[3])
            .push("fc", Linear::new(3, 2, &mut rng))
            .build()
            .unwrap()
    };
    let grads = |graph: &mut Graph| {
        let mut out = Vec::new();
        graph.visit_params(&mut |p| {
            for (i, g) in p.grad.iter_mut().enumerate() {
                *g = 3.0 + i as f32; // a norm far above 1
            }
            out.push((p.value.clone(), p.grad.clone()));
        });
        out
    };
    for (clip, l1) in [(Some(1.0f32), 0.0f32), (None, 0.01)] {
        let mut graph = build();
        let before = grads(&mut graph);
        let norm = before
            .iter()
            .flat_map(|(_, g)| g)
            .map(|&g| f64::from(g).powi(2))
            .sum::<f64>()
            .sqrt();
        let mut opt = Optimizer::new(Method::Sgd(Sgd::new(1.0))).unwrap();
        if let Some(c) = clip {
            opt = opt.clip_norm(c).unwrap();
        }
        opt = opt.l1(l1).unwrap();
        opt.step(&mut graph, axonal::kernels::Parallelism::Sequential)
            .unwrap();
        let scale = clip.map_or(1.0, |c| f64::from(c) / (norm + 1e-6));
        let mut k = 0;
        graph.visit_params(&mut |p| {
            let (value, grad) = &before[k];
            for i in 0..p.len() {
                let sign = f64::from(value[i].signum()) * f64::from(value[i] != 0.0);
                let step = f64::from(grad[i]) * scale + f64::from(l1) * sign;
                let want = f64::from(value[i]) - step;
                assert!(
                    (f64::from(p.value[i]) - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{} [{i}]: got {}, want {want}",
                    p.name,
                    p.value[i]
                );
            }
            k += 1;
        });
    }
    let opt = Optimizer::new(Method::Sgd(Sgd::new(0.1))).unwrap();
    assert!(opt.clip_norm(0.0).is_err());
    let opt = Optimizer::new(Method::Sgd(Sgd::new(0.1))).unwrap();
    assert!(opt.l1(-1.0).is_err());
}

/// Layers called outside a graph, and datasets asked for samples they lack, report
/// errors instead of panicking.
#[test]
fn direct_misuse_is_an_error() {
    use axonal::data::{Augment, Dataset};
    use axonal::{Layer, Tensor};
    let mut rng = Rng::new(95);
    let mut fc = Linear::new(3, 2, &mut rng);
    let mut y = Tensor::zeros(&[1, 2]).unwrap();
    assert!(fc.forward(&Context::default(), &[], &mut y).is_err());
    let x = Tensor::zeros(&[1, 3]).unwrap();
    let mut dy = vec![0.0; 2];
    assert!(fc
        .backward(&Context::default(), &[&x], &y, &mut dy, &mut [])
        .is_err());
    let data = Dataset::synthetic(4, &[2], 2, 0);
    let mut out = vec![0.0; 4];
    let fill = |idx: &[usize], out: &mut [f32]| {
        data.fill(
            idx,
            out,
            &mut Vec::new(),
            &Augment::default(),
            &mut Rng::new(0),
        )
    };
    assert!(fill(&[0, 9], &mut out).is_err());
    assert!(fill(&[0], &mut out).is_err());
    assert!(fill(&[0, 3], &mut out).is_ok());
}
