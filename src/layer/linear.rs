//! `Linear`: y = act(x·Wᵀ + b) on the GEMM with its fused epilogue.

use super::{expect_backward, expect_inputs, Context, Flops, Layer};
use crate::error::{Error, Result};
use crate::init::{default_bias, Init};
use crate::param::Param;
use crate::rng::Rng;
use crate::tensor::Tensor;
use axonal_kernels::eltwise::{bias_activation_backward_in_place, Activation, BiasShape, Saved};
use axonal_kernels::gemm::{sgemm, Bias, Epilogue, GemmDesc, MatrixLayout, Transpose};

/// A fully connected layer on `[batch, in_features]` inputs; the weight is
/// `[out_features, in_features]` as in PyTorch.
pub struct Linear {
    in_features: usize,
    out_features: usize,
    weight: Param,
    bias: Option<Param>,
    /// An activation the graph fused into this layer.
    activation: Activation,
}

impl Linear {
    /// PyTorch's default initialization, with a bias.
    pub fn new(in_features: usize, out_features: usize, rng: &mut Rng) -> Linear {
        Linear::with_init(in_features, out_features, true, Init::PyTorchDefault, rng)
    }

    pub fn with_init(
        in_features: usize,
        out_features: usize,
        bias: bool,
        init: Init,
        rng: &mut Rng,
    ) -> Linear {
        let shape = [out_features, in_features];
        let weight = Param::new("weight", &shape, init.weights(&shape, rng));
        let bias = bias.then(|| {
            let b = default_bias(out_features, in_features, rng);
            Param::new("bias", &[out_features], b)
        });
        Linear {
            in_features,
            out_features,
            weight,
            bias,
            activation: Activation::Identity,
        }
    }

    fn batch(&self, shape: &[usize]) -> Result<usize> {
        match *shape {
            [n, f] if f == self.in_features => Ok(n),
            _ => Err(Error::shape(
                "linear input",
                format!("[batch, {}]", self.in_features),
                format!("{shape:?}"),
            )),
        }
    }
}

impl Layer for Linear {
    fn kind(&self) -> String {
        match self.activation {
            Activation::Identity => "linear".into(),
            act => format!("linear+{}", act.name()),
        }
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs("linear", inputs, 1)?;
        Ok(vec![self.batch(inputs[0])?, self.out_features])
    }

    fn forward(&mut self, ctx: &Context, inputs: &[&Tensor], y: &mut Tensor) -> Result<()> {
        expect_inputs("linear", inputs, 1)?;
        let n = self.batch(inputs[0].shape())?;
        let mut desc = GemmDesc::row_major(n, self.out_features, self.in_features);
        desc.trans_b = Transpose::Yes;
        desc.b = MatrixLayout::row_major(self.in_features);
        let bias = match &self.bias {
            Some(b) => Bias::PerCol(&b.value),
            None => Bias::None,
        };
        let epilogue = Epilogue::default().bias(bias).activation(self.activation);
        sgemm(
            &desc,
            inputs[0].data(),
            &self.weight.value,
            y.data_mut(),
            &epilogue,
            ctx.par,
        )?;
        Ok(())
    }

    fn backward(
        &mut self,
        ctx: &Context,
        inputs: &[&Tensor],
        y: &Tensor,
        dy: &mut [f32],
        dx: &mut [Option<&mut [f32]>],
    ) -> Result<()> {
        expect_backward("linear", inputs, dx, 1)?;
        let (n, i, o) = (
            self.batch(inputs[0].shape())?,
            self.in_features,
            self.out_features,
        );
        // dz = act′·dy in place, and the bias gradient (column sums) in the same pass.
        if self.bias.is_some() || self.activation != Activation::Identity {
            bias_activation_backward_in_place(
                &BiasShape::matrix(n, o),
                self.activation,
                Saved::Output(y.data()),
                dy,
                self.bias.as_mut().map(|b| &mut b.grad[..]),
                ctx.par,
            )?;
        }
        // dW (o × i) = dzᵀ · x.
        let mut desc = GemmDesc::row_major(o, i, n);
        desc.trans_a = Transpose::Yes;
        desc.a = MatrixLayout::row_major(o);
        let plain = Epilogue::default();
        sgemm(
            &desc,
            dy,
            inputs[0].data(),
            &mut self.weight.grad,
            &plain,
            ctx.par,
        )?;
        // dx (n × i) = dz · W.
        if let Some(dx) = dx[0].as_deref_mut() {
            let desc = GemmDesc::row_major(n, i, o);
            sgemm(&desc, dy, &self.weight.value, dx, &plain, ctx.par)?;
        }
        Ok(())
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.weight);
        if let Some(b) = &mut self.bias {
            f(b);
        }
    }

    fn flops(&self, inputs: &[&[usize]]) -> Flops {
        let n = inputs.first().and_then(|s| s.first()).copied().unwrap_or(0);
        let mac = (n * self.in_features * self.out_features) as f64;
        Flops {
            forward: 2.0 * mac,
            backward_data: 2.0 * mac,
            backward_params: 2.0 * mac,
        }
    }

    fn fuse_activation(&mut self, act: Activation) -> bool {
        if self.activation != Activation::Identity
            || !axonal_kernels::eltwise::gradient_from_output(act)
        {
            return false;
        }
        self.activation = act;
        true
    }
}
