//! After a first call of a given shape, every batch-norm entry point (training,
//! inference and backward, plain and fused with ReLU, NCHW and NHWC) allocates nothing
//! on one thread: its per-call tables live in reused per-thread storage.
//!
//! The counter sees every thread of the process, so this file holds this one test:
//! another test running beside it would count its allocations here.

use axonal_kernels::norm::{
    batch_norm_backward, batch_norm_forward_inference, batch_norm_forward_training,
    batch_norm_relu_backward, batch_norm_relu_forward_inference, batch_norm_relu_forward_training,
    BatchNormDesc,
};
use axonal_kernels::{Layout, Parallelism};
use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts every allocation and reallocation of the process.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts the calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `realloc`'s own contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Deterministic values in [offset − 1, offset + 1).
fn values(len: usize, seed: u64, offset: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            offset + (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// The buffers of one shape: inputs, outputs and running statistics.
struct Buffers {
    x: Vec<f32>,
    dy: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    y: Vec<f32>,
    saved_mean: Vec<f32>,
    saved_inv_std: Vec<f32>,
    dx: Vec<f32>,
    dgamma: Vec<f32>,
    dbeta: Vec<f32>,
}

impl Buffers {
    fn new(desc: &BatchNormDesc) -> Self {
        let (len, c) = (desc.len(), desc.channels);
        Buffers {
            x: values(len, 1, 0.5),
            dy: values(len, 2, 0.0),
            gamma: values(c, 3, 1.0),
            beta: values(c, 4, 0.0),
            running_mean: vec![0.0; c],
            running_var: vec![1.0; c],
            y: vec![0.0; len],
            saved_mean: vec![0.0; c],
            saved_inv_std: vec![0.0; c],
            dx: vec![0.0; len],
            dgamma: vec![0.0; c],
            dbeta: vec![0.0; c],
        }
    }

    /// One call of each entry point: training, inference and backward, plain or ReLU.
    fn step(&mut self, desc: &BatchNormDesc, relu: bool) {
        let par = Parallelism::Sequential;
        let b = self;
        let train = if relu {
            batch_norm_relu_forward_training
        } else {
            batch_norm_forward_training
        };
        train(
            desc,
            &b.x,
            &b.gamma,
            &b.beta,
            0.1,
            &mut b.running_mean,
            &mut b.running_var,
            &mut b.y,
            &mut b.saved_mean,
            &mut b.saved_inv_std,
            par,
        )
        .unwrap();
        if relu {
            batch_norm_relu_backward(
                desc,
                &b.x,
                &b.y,
                &b.dy,
                &b.gamma,
                &b.saved_mean,
                &b.saved_inv_std,
                &mut b.dx,
                &mut b.dgamma,
                &mut b.dbeta,
                par,
            )
        } else {
            batch_norm_backward(
                desc,
                &b.x,
                &b.dy,
                &b.gamma,
                &b.saved_mean,
                &b.saved_inv_std,
                &mut b.dx,
                &mut b.dgamma,
                &mut b.dbeta,
                par,
            )
        }
        .unwrap();
        let infer = if relu {
            batch_norm_relu_forward_inference
        } else {
            batch_norm_forward_inference
        };
        infer(
            desc,
            &b.x,
            &b.gamma,
            &b.beta,
            &b.running_mean,
            &b.running_var,
            &mut b.y,
            par,
        )
        .unwrap();
    }
}

/// Shapes (batch, channels, spatial): runs shorter and longer than a row block, a batch
/// of 2, and spatial = 1 (BatchNorm1d).
const SHAPES: [(usize, usize, usize); 5] = [
    (64, 64, 169),
    (3, 32, 676),
    (2, 64, 1024),
    (64, 100, 1),
    (1, 3, 5000),
];

#[test]
fn batch_norm_calls_after_the_first_allocate_nothing() {
    for (n, c, s) in SHAPES {
        for layout in [Layout::Nchw, Layout::Nhwc] {
            for relu in [false, true] {
                let desc = BatchNormDesc::new(n, c, s).layout(layout);
                let mut buffers = Buffers::new(&desc);
                buffers.step(&desc, relu);
                let before = ALLOCATIONS.load(Ordering::Relaxed);
                for _ in 0..3 {
                    buffers.step(&desc, relu);
                }
                let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
                assert_eq!(
                    during, 0,
                    "{n}x{c}x{s} {layout:?} relu={relu}: {during} allocations in 3 steps"
                );
            }
        }
    }
}
