//! Max, average and global-average pooling, forward and backward.

mod desc;

pub use desc::Pool2dDesc;
