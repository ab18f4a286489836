//! Golden tests: every reference kernel against PyTorch's vectors in `shared/golden`.
//!
//! One module per operator family; `coverage` checks that every golden file is read by
//! one of them, so that a new file cannot go untested.

mod support;

mod activation;
mod batchnorm;
mod conv;
mod coverage;
mod linear;
mod loss;
mod optim;
mod pool;
mod rnn;
mod train_step;
