//! `Dropout`: zeroes each element with probability p in training (scaling the rest by
//! 1/(1 − p)), the identity in evaluation.

use super::{expect_backward, expect_inputs, Context, Layer};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use axonal_kernels::dropout::{
    dropout_backward_masked, dropout_forward, mask_words, Dropout as Mask,
};

/// Dropout with a counter-based mask: it depends only on (seed, training step, element
/// index), so a run is reproducible for any thread count.
pub struct Dropout {
    p: f32,
    seed: u64,
    /// The keep-mask of the last training pass, one bit per element.
    mask: Vec<u32>,
    /// Whether the last forward pass dropped anything (training mode).
    trained: bool,
}

impl Dropout {
    /// Dropout with probability `p` (in [0, 1]); `seed` tells this layer's stream from
    /// other dropout layers'.
    pub fn new(p: f32, seed: u64) -> Result<Dropout> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "dropout p",
                format!("must be in [0, 1], got {p}"),
            ));
        }
        Ok(Dropout {
            p,
            seed,
            mask: Vec::new(),
            trained: false,
        })
    }
}

impl Layer for Dropout {
    fn kind(&self) -> String {
        "dropout".into()
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs("dropout", inputs, 1)?;
        Ok(inputs[0].to_vec())
    }

    fn forward(&mut self, ctx: &Context, inputs: &[&Tensor], y: &mut Tensor) -> Result<()> {
        expect_inputs("dropout", inputs, 1)?;
        let x = inputs[0].data();
        self.trained = ctx.train;
        if !ctx.train {
            y.data_mut().copy_from_slice(x);
            return Ok(());
        }
        self.mask.resize(mask_words(x.len()), 0);
        let mask = Mask::new(self.p, self.seed, ctx.step);
        dropout_forward(&mask, x, y.data_mut(), Some(&mut self.mask), ctx.par)?;
        Ok(())
    }

    fn backward(
        &mut self,
        ctx: &Context,
        inputs: &[&Tensor],
        _y: &Tensor,
        dy: &mut [f32],
        dx: &mut [Option<&mut [f32]>],
    ) -> Result<()> {
        expect_backward("dropout", inputs, dx, 1)?;
        let Some(dx) = dx[0].as_deref_mut() else {
            return Ok(());
        };
        if self.trained {
            dropout_backward_masked(self.p, &self.mask, dy, dx, ctx.par)?;
        } else {
            dx.copy_from_slice(dy);
        }
        Ok(())
    }
}
