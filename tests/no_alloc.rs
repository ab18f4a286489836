//! After the first step, a training step allocates nothing: the graph's buffers, the
//! kernels' workspaces and the optimizer's state are all sized once and reused.

use axonal::data::{Augment, Dataset};
use axonal::kernels::optim::Adam;
use axonal::optim::{Method, Optimizer};
use axonal::train::{train_step, Batch};
use axonal::{models, Context, Rng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts every allocation and reallocation of the process.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts the calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `realloc`'s own contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn training_steps_after_the_first_allocate_nothing() {
    use axonal::kernels::Layout;
    for (model, layout) in [
        ("seed_cnn", Layout::Nchw),
        ("seed_cnn", Layout::Nhwc),
        ("seed_cnn_bn", Layout::Nchw),
        ("seed_cnn_bn", Layout::Nhwc),
        ("resnet_mini", Layout::Nhwc),
        ("mlp", Layout::Nchw),
    ] {
        let mut m = models::build(model, 0).unwrap();
        m.graph.set_layout(layout);
        let data = Dataset::synthetic(16, m.graph.sample_shape(), 10, 1);
        let mut opt = Optimizer::new(Method::Adam(Adam::new(1e-3))).unwrap();
        let (mut rng, mut batch) = (Rng::new(0), Batch::default());
        let indices: Vec<usize> = (0..16).collect();
        let ctx = Context::default();
        let mut step = |m: &mut models::Model, opt: &mut Optimizer, rng: &mut Rng| {
            train_step(
                &mut m.graph,
                m.loss,
                opt,
                &ctx,
                &data,
                &indices,
                &Augment::default(),
                rng,
                &mut batch,
            )
            .unwrap();
        };
        step(&mut m, &mut opt, &mut rng);
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..3 {
            step(&mut m, &mut opt, &mut rng);
        }
        let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(
            during, 0,
            "{model} {layout:?}: {during} allocations in 3 steps"
        );
    }
}
