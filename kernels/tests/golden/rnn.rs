//! Recurrent layers (LSTM, GRU, tanh RNN, stacked) against PyTorch: out, the final
//! states, and every gradient of backpropagation through time.

use crate::support::{assert_close, golden_files, Golden};
use axonal_kernels::reference::{
    rnn_backward, rnn_forward, RnnDesc, RnnKind, RnnState, RnnStateMut,
};
use std::ops::Range;

fn descriptor(g: &Golden) -> RnnDesc {
    let name = &g.name;
    // `op` is not checked: the files store it as a bare string, which `meta_str` cannot
    // parse as JSON; the `rnn_` prefix already says what the file holds.
    // Batch-first is what the kernels take; the states are [layers, batch, hidden] anyway.
    assert!(g.meta_bool("batch_first"), "{name}: not batch-first");
    let kind = match g.meta_str("kind").as_str() {
        "lstm" => RnnKind::Lstm,
        "gru" => RnnKind::Gru,
        "rnn_tanh" => RnnKind::RnnTanh,
        other => panic!("{name}: unknown recurrent kind {other:?}"),
    };
    let x_shape = g.shape("x");
    assert_eq!(x_shape.len(), 3, "{name}: x is not [batch, seq, input]");
    let desc = RnnDesc {
        kind,
        input_size: x_shape[2],
        hidden: g.meta_f64("hidden") as usize,
        layers: g.meta_f64("layers") as usize,
        batch: x_shape[0],
        seq_len: x_shape[1],
    };
    let state_shape = [desc.layers, desc.batch, desc.hidden];
    assert_eq!(g.shape("h0"), state_shape, "{name}: h0 shape");
    assert_eq!(
        g.has("c0"),
        kind.has_cell_state(),
        "{name}: c0 present for {kind:?}"
    );
    desc
}

/// Every PyTorch parameter name of `desc` with its range in the flat buffer.
fn parameter_ranges(desc: &RnnDesc, file: &str) -> Vec<(String, Range<usize>)> {
    let mut ranges = Vec::new();
    for layer in 0..desc.layers {
        let p = desc
            .layer_params(layer)
            .unwrap_or_else(|e| panic!("{file}: layer {layer}: {e}"));
        for (name, range) in [
            ("weight_ih", p.weight_ih),
            ("weight_hh", p.weight_hh),
            ("bias_ih", p.bias_ih),
            ("bias_hh", p.bias_hh),
        ] {
            ranges.push((format!("{name}_l{layer}"), range));
        }
    }
    ranges
}

/// Cell-state tensor `key` (c0, cn, dcn, dc0) for LSTM; an empty slice for the cells
/// without one, which is what the kernels take there.
fn cell_tensor<'g>(g: &'g Golden, desc: &RnnDesc, key: &str) -> &'g [f32] {
    if desc.kind.has_cell_state() {
        g.tensor(key)
    } else {
        &[]
    }
}

#[test]
fn recurrent_layers_match_pytorch() {
    for file in golden_files("rnn_") {
        let g = Golden::load(&file);
        let desc = descriptor(&g);
        let ranges = parameter_ranges(&desc, &file);

        // Every param.* / grad.* in the file must be one of ours, and vice versa.
        let file_params = g.keys().iter().filter(|k| k.starts_with("param.")).count();
        let file_grads = g.keys().iter().filter(|k| k.starts_with("grad.")).count();
        assert_eq!(file_params, ranges.len(), "{file}: parameter count");
        assert_eq!(file_grads, ranges.len(), "{file}: gradient count");

        let mut params = vec![0.0; desc.params_len()];
        for (name, range) in &ranges {
            let values = g.tensor(&format!("param.{name}"));
            assert_eq!(values.len(), range.len(), "{file}: param.{name} length");
            params[range.clone()].copy_from_slice(values);
        }

        let mut out = vec![0.0; desc.out_len()];
        let mut hn = vec![0.0; desc.h_len()];
        let mut cn = vec![0.0; desc.c_len()];
        let cache = rnn_forward(
            &desc,
            &params,
            g.tensor("x"),
            RnnState {
                h: g.tensor("h0"),
                c: cell_tensor(&g, &desc, "c0"),
            },
            &mut out,
            RnnStateMut {
                h: &mut hn,
                c: &mut cn,
            },
        )
        .unwrap_or_else(|e| panic!("{file}: forward: {e}"));
        assert_close(&format!("{file}: out"), &out, g.tensor("out"));
        assert_close(&format!("{file}: hn"), &hn, g.tensor("hn"));
        assert_close(&format!("{file}: cn"), &cn, cell_tensor(&g, &desc, "cn"));

        let mut dx = vec![0.0; desc.x_len()];
        let mut dh0 = vec![0.0; desc.h_len()];
        let mut dc0 = vec![0.0; desc.c_len()];
        let mut dparams = vec![0.0; desc.params_len()];
        rnn_backward(
            &desc,
            &cache,
            g.tensor("dout"),
            RnnState {
                h: g.tensor("dhn"),
                c: cell_tensor(&g, &desc, "dcn"),
            },
            &mut dx,
            RnnStateMut {
                h: &mut dh0,
                c: &mut dc0,
            },
            &mut dparams,
        )
        .unwrap_or_else(|e| panic!("{file}: backward: {e}"));
        assert_close(&format!("{file}: dx"), &dx, g.tensor("dx"));
        assert_close(&format!("{file}: dh0"), &dh0, g.tensor("dh0"));
        assert_close(&format!("{file}: dc0"), &dc0, cell_tensor(&g, &desc, "dc0"));
        for (name, range) in &ranges {
            let key = format!("grad.{name}");
            assert_close(
                &format!("{file}: {key}"),
                &dparams[range.clone()],
                g.tensor(&key),
            );
        }
    }
}
