//! Special functions that std does not provide, in f64.

pub use crate::reference::{erf, erfc};
