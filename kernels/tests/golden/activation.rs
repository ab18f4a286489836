//! Reference activations against PyTorch: y = act(x) and dx = dy·act'(x).

use crate::support::{assert_close, golden_files, Golden};
use axonal_kernels::eltwise::{Activation, BiasShape};
use axonal_kernels::reference::{
    activation_backward, activation_forward, bias_activation_backward, bias_activation_forward,
};

fn activation_of(g: &Golden) -> Activation {
    match g.meta_str("kind").as_str() {
        "relu" => Activation::Relu,
        "leaky_relu" => Activation::LeakyRelu {
            slope: g.meta_f64("negative_slope") as f32,
        },
        "sigmoid" => Activation::Sigmoid,
        "tanh" => Activation::Tanh,
        "gelu" => Activation::Gelu,
        "gelu_tanh" => Activation::GeluTanh,
        "elu" => Activation::Elu {
            alpha: g.meta_f64("alpha") as f32,
        },
        "silu" => Activation::Silu,
        other => panic!("{}: unknown activation kind {other:?}", g.name),
    }
}

#[test]
fn activations_match_pytorch() {
    for name in golden_files("act_") {
        let g = Golden::load(&name);
        let act = activation_of(&g);
        assert_eq!(act.name(), g.meta_str("kind"), "{name}");
        let (x, dy) = (g.tensor("x"), g.tensor("dy"));
        let mut y = vec![f32::NAN; x.len()];
        activation_forward(act, x, &mut y).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_close(&format!("{name} y"), &y, g.tensor("y"));
        let mut dx = vec![f32::NAN; x.len()];
        activation_backward(act, x, dy, &mut dx).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_close(&format!("{name} dx"), &dx, g.tensor("dx"));

        // The fused kernel with no bias is the same function.
        let shape = BiasShape::matrix(1, x.len());
        let mut fused = vec![f32::NAN; x.len()];
        bias_activation_forward(&shape, act, x, None, &mut fused).unwrap();
        assert_close(&format!("{name} fused y"), &fused, g.tensor("y"));
        bias_activation_backward(&shape, act, x, dy, &mut fused, None).unwrap();
        assert_close(&format!("{name} fused dx"), &fused, g.tensor("dx"));
    }
}
