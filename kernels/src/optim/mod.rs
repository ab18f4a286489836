//! Parameter updates of the optimizers.

mod hyper;

pub use hyper::{Adagrad, Adam, RmsProp, Sgd, WeightDecay};
