//! Trainable parameters: a value, its gradient and a PyTorch-style name.

/// A trainable tensor. `name` is the full PyTorch name (`conv1.weight`) once the layer
/// is placed in a graph; conv weights are OIHW, linear weights `out × in`, as in PyTorch.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub value: Vec<f32>,
    /// ∂loss/∂value of the last backward pass (overwritten by each pass).
    pub grad: Vec<f32>,
}

impl Param {
    /// A parameter holding `value`, with a zero gradient.
    pub fn new(name: &str, shape: &[usize], value: Vec<f32>) -> Param {
        debug_assert_eq!(shape.iter().product::<usize>(), value.len());
        Param {
            name: name.to_string(),
            shape: shape.to_vec(),
            grad: vec![0.0; value.len()],
            value,
        }
    }

    pub fn len(&self) -> usize {
        self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}
