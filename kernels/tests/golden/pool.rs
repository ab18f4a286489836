//! Reference max, average and global-average pooling against PyTorch, in both
//! activation layouts.

use crate::conv::{dims4, relayout};
use crate::support::{assert_close, golden_files, Golden};
use axonal_kernels::pool::Pool2dDesc;
use axonal_kernels::reference::{
    avg_pool2d_backward, avg_pool2d_forward, global_avg_pool2d_backward, global_avg_pool2d_forward,
    max_pool2d_backward, max_pool2d_forward,
};
use axonal_kernels::Layout;

/// Runs one golden case in `layout` and compares y and dx with PyTorch's. Max-pool files
/// hold no indices: the backward pass uses the argmax of our own forward pass, so dx
/// also checks that it picks the element PyTorch picked.
fn check_case(g: &Golden, layout: Layout) {
    let what = |t: &str| format!("{} ({}) {t}", g.name, layout.name());
    let (xd, yd) = (dims4(g, "x"), dims4(g, "y"));
    let kind = g.meta_str("kind");
    // Global files carry no window metadata: the window is the whole input.
    let desc = if kind == "global_avg" {
        Pool2dDesc::global(xd.n, xd.c, [xd.h, xd.w])
    } else {
        Pool2dDesc::new(xd.n, xd.c, [xd.h, xd.w], g.meta_pair("kernel"))
            .stride(g.meta_pair("stride"))
            .padding(g.meta_pair("padding"))
    }
    .layout(layout);
    desc.validate()
        .unwrap_or_else(|e| panic!("{}: bad descriptor: {e}", g.name));
    assert_eq!(desc.output_dims().unwrap(), yd, "{}: output size", g.name);

    let x = relayout(g.tensor("x"), xd, Layout::Nchw, layout);
    let dy = relayout(g.tensor("dy"), yd, Layout::Nchw, layout);
    let mut y = vec![f32::NAN; yd.len()];
    let mut dx = vec![f32::NAN; xd.len()];
    let result = match kind.as_str() {
        "max" => {
            let mut argmax = vec![u32::MAX; yd.len()];
            max_pool2d_forward(&desc, &x, &mut y, &mut argmax)
                .and_then(|()| max_pool2d_backward(&desc, &dy, &argmax, &mut dx))
        }
        "avg" => {
            let count_include_pad = g.meta_bool("count_include_pad");
            avg_pool2d_forward(&desc, count_include_pad, &x, &mut y)
                .and_then(|()| avg_pool2d_backward(&desc, count_include_pad, &dy, &mut dx))
        }
        "global_avg" => global_avg_pool2d_forward(&desc, &x, &mut y)
            .and_then(|()| global_avg_pool2d_backward(&desc, &dy, &mut dx)),
        other => panic!("{}: unknown pooling kind {other:?}", g.name),
    };
    result.unwrap_or_else(|e| panic!("{}: {e}", what(&kind)));
    let y = relayout(&y, yd, layout, Layout::Nchw);
    assert_close(&what("y"), &y, g.tensor("y"));
    let dx = relayout(&dx, xd, layout, Layout::Nchw);
    assert_close(&what("dx"), &dx, g.tensor("dx"));
}

#[test]
fn pool_nchw_matches_pytorch() {
    for name in golden_files("pool_") {
        check_case(&Golden::load(&name), Layout::Nchw);
    }
}

#[test]
fn pool_nhwc_matches_pytorch() {
    for name in golden_files("pool_") {
        check_case(&Golden::load(&name), Layout::Nhwc);
    }
}
