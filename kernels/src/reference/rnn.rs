//! Reference recurrent layers — LSTM, GRU and tanh RNN — forward and backpropagation
//! through time, stacked in layers, with PyTorch's equations, gate order and parameters.
//!
//! Tensors are batch-first, as with `batch_first=True`: x `[batch, seq, input]` and out
//! `[batch, seq, hidden]` (the top layer's h at every step). The states h0, hn (and c0,
//! cn for LSTM) are `[layers, batch, hidden]`, as PyTorch keeps them whatever
//! `batch_first` says. The layers are unidirectional, with biases, no dropout between
//! layers and no projection.
//!
//! The parameters of all layers live in one flat buffer in PyTorch's `parameters()`
//! order: for each layer k, `weight_ih_l{k}` `[gates·hidden, in]` (in is `input_size`
//! for layer 0 and `hidden` above), `weight_hh_l{k}` `[gates·hidden, hidden]`,
//! `bias_ih_l{k}` and `bias_hh_l{k}` `[gates·hidden]`, each row-major with the gates'
//! row blocks in PyTorch's order. [`RnnDesc::layer_params`] says where each one sits.
//! Parameter gradients use the same layout.

use crate::error::{check_exact, product, KernelError, Result};
use std::ops::Range;

/// Which recurrent cell, with PyTorch's equations (σ is the logistic sigmoid, ⊙ the
/// element-wise product, x the layer input, h and c the previous states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RnnKind {
    /// `nn.LSTM`, gates in the order i, f, g, o:
    /// i = σ(W_ii x + b_ii + W_hi h + b_hi), f = σ(W_if x + b_if + W_hf h + b_hf),
    /// g = tanh(W_ig x + b_ig + W_hg h + b_hg), o = σ(W_io x + b_io + W_ho h + b_ho),
    /// c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c').
    Lstm,
    /// `nn.GRU`, gates in the order r, z, n:
    /// r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
    /// n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.
    Gru,
    /// `nn.RNN` with `nonlinearity="tanh"`: h' = tanh(W_ih x + b_ih + W_hh h + b_hh).
    RnnTanh,
}

impl RnnKind {
    /// Gates per hidden unit, i.e. the row blocks of every weight and bias: 4, 3 or 1.
    pub fn gates(self) -> usize {
        match self {
            RnnKind::Lstm => 4,
            RnnKind::Gru => 3,
            RnnKind::RnnTanh => 1,
        }
    }

    /// Whether the cell carries a cell state c besides h (LSTM only).
    pub fn has_cell_state(self) -> bool {
        self == RnnKind::Lstm
    }
}

/// The shape of a stacked recurrent layer call. Build it as a struct literal and check
/// it with [`RnnDesc::validate`]; every kernel here does so itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RnnDesc {
    pub kind: RnnKind,
    /// Features of each x vector (PyTorch's `input_size`).
    pub input_size: usize,
    /// Features of h and c (PyTorch's `hidden_size`).
    pub hidden: usize,
    /// Stacked layers (PyTorch's `num_layers`); layer k > 0 reads the h sequence of k − 1.
    pub layers: usize,
    pub batch: usize,
    /// Time steps.
    pub seq_len: usize,
}

/// Where one layer's parameters sit in the flat parameter (or gradient) buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RnnLayerParams {
    /// `weight_ih_l{k}`: `[gates·hidden, in]`, row-major.
    pub weight_ih: Range<usize>,
    /// `weight_hh_l{k}`: `[gates·hidden, hidden]`, row-major.
    pub weight_hh: Range<usize>,
    /// `bias_ih_l{k}`: `[gates·hidden]`.
    pub bias_ih: Range<usize>,
    /// `bias_hh_l{k}`: `[gates·hidden]`.
    pub bias_hh: Range<usize>,
}

/// Product of sizes that saturates instead of overflowing, so that the public length
/// helpers never panic; a saturated length can never equal a real slice's length.
fn saturating_product(dims: &[usize]) -> usize {
    dims.iter().fold(1, |acc, &d| acc.saturating_mul(d))
}

impl RnnDesc {
    /// Checks that `hidden` and `layers` are at least 1 and that no tensor size overflows.
    /// `batch`, `seq_len` and `input_size` may be 0 (the loops then do nothing).
    pub fn validate(&self) -> Result<()> {
        if self.hidden == 0 {
            return Err(KernelError::invalid(
                "rnn hidden",
                "must be at least 1, got 0",
            ));
        }
        if self.layers == 0 {
            return Err(KernelError::invalid(
                "rnn layers",
                "must be at least 1, got 0",
            ));
        }
        product("rnn x", &[self.batch, self.seq_len, self.input_size])?;
        // The cache keeps seq + 1 states and the gate activations of every step.
        product(
            "rnn gate activations",
            &[
                self.seq_len.saturating_add(1),
                self.batch,
                self.kind.gates(),
                self.hidden,
            ],
        )?;
        product("rnn state", &[self.layers, self.batch, self.hidden])?;
        self.params_len_checked().ok_or(KernelError::SizeOverflow {
            what: "rnn parameters",
        })?;
        Ok(())
    }

    /// Features that layer `layer` reads: `input_size` for layer 0, `hidden` above.
    pub fn layer_input_size(&self, layer: usize) -> usize {
        if layer == 0 {
            self.input_size
        } else {
            self.hidden
        }
    }

    /// Elements of x and dx: batch × seq_len × input_size.
    pub fn x_len(&self) -> usize {
        saturating_product(&[self.batch, self.seq_len, self.input_size])
    }

    /// Elements of out and dout: batch × seq_len × hidden.
    pub fn out_len(&self) -> usize {
        saturating_product(&[self.batch, self.seq_len, self.hidden])
    }

    /// Elements of h0, hn, dh0 and dhn: layers × batch × hidden.
    pub fn h_len(&self) -> usize {
        saturating_product(&[self.layers, self.batch, self.hidden])
    }

    /// Elements of c0, cn, dc0 and dcn: as [`RnnDesc::h_len`] for LSTM, 0 otherwise
    /// (GRU and tanh RNN take empty slices there).
    pub fn c_len(&self) -> usize {
        if self.kind.has_cell_state() {
            self.h_len()
        } else {
            0
        }
    }

    /// Elements of the flat parameter buffer (and of its gradient), all layers together.
    pub fn params_len(&self) -> usize {
        self.params_len_checked().unwrap_or(usize::MAX)
    }

    /// Where layer `layer`'s weights and biases sit in the flat parameter buffer.
    pub fn layer_params(&self, layer: usize) -> Result<RnnLayerParams> {
        self.validate()?;
        if layer >= self.layers {
            return Err(KernelError::invalid(
                "rnn layer",
                format!("must be below {}, got {layer}", self.layers),
            ));
        }
        Ok(self.ranges(layer))
    }

    /// Parameters of one layer reading `layer_input` features, `None` on overflow.
    fn layer_params_len(&self, layer_input: usize) -> Option<usize> {
        let rows = self.kind.gates().checked_mul(self.hidden)?;
        rows.checked_mul(layer_input.checked_add(self.hidden)?.checked_add(2)?)
    }

    fn params_len_checked(&self) -> Option<usize> {
        let first = self.layer_params_len(self.input_size)?;
        let upper = self.layer_params_len(self.hidden)?;
        first.checked_add(upper.checked_mul(self.layers.saturating_sub(1))?)
    }

    /// [`RnnDesc::layer_params`] without the checks, for a validated descriptor and a
    /// layer below `layers`.
    fn ranges(&self, layer: usize) -> RnnLayerParams {
        let rows = self.kind.gates() * self.hidden;
        let first = rows * (self.input_size + self.hidden + 2);
        let upper = rows * (self.hidden + self.hidden + 2);
        let start = if layer == 0 {
            0
        } else {
            first + (layer - 1) * upper
        };
        let ih_end = start + rows * self.layer_input_size(layer);
        let hh_end = ih_end + rows * self.hidden;
        RnnLayerParams {
            weight_ih: start..ih_end,
            weight_hh: ih_end..hh_end,
            bias_ih: hh_end..hh_end + rows,
            bias_hh: hh_end + rows..hh_end + 2 * rows,
        }
    }
}

/// A recurrent state read by a kernel: h `[layers, batch, hidden]` and, for LSTM, c of
/// the same shape (an empty slice for GRU and tanh RNN). Holds h0/c0 for the forward
/// pass and the incoming gradients dhn/dcn for the backward pass.
#[derive(Debug, Clone, Copy)]
pub struct RnnState<'a> {
    pub h: &'a [f32],
    pub c: &'a [f32],
}

/// A recurrent state written by a kernel, shaped as [`RnnState`]: hn/cn from the
/// forward pass, dh0/dc0 from the backward pass.
#[derive(Debug)]
pub struct RnnStateMut<'a> {
    pub h: &'a mut [f32],
    pub c: &'a mut [f32],
}

/// What [`rnn_forward`] keeps for [`rnn_backward`], all in f64: the descriptor, the
/// parameters, and every layer's input sequence, states and gate activations.
#[derive(Debug, Clone)]
pub struct RnnCache {
    desc: RnnDesc,
    params: Vec<f64>,
    layers: Vec<LayerTrace>,
}

/// One layer's forward pass. Sequences are time-major, `[seq, batch, ...]`, so that a
/// step's values for the whole batch are contiguous.
#[derive(Debug, Clone)]
struct LayerTrace {
    /// The layer's input, `[seq, batch, in]`.
    input: Vec<f64>,
    /// h before and after every step, `[seq + 1, batch, hidden]`; step 0 is h0.
    h: Vec<f64>,
    /// c likewise for LSTM; empty otherwise.
    c: Vec<f64>,
    /// Gate values after their nonlinearity, `[seq, batch, gates·hidden]`, PyTorch order.
    gates: Vec<f64>,
    /// GRU only: W_hn h + b_hn, `[seq, batch, hidden]`, the term that r scales.
    hh_n: Vec<f64>,
}

/// Forward pass of a stacked recurrent layer in training mode: writes out
/// `[batch, seq, hidden]` and the final states `state_n` (hn, and cn for LSTM), and
/// returns the [`RnnCache`] that [`rnn_backward`] needs.
///
/// `params` is the flat buffer described in the module documentation; `state0` holds
/// h0 and, for LSTM, c0 (an empty `c` otherwise).
pub fn rnn_forward(
    desc: &RnnDesc,
    params: &[f32],
    x: &[f32],
    state0: RnnState<'_>,
    out: &mut [f32],
    state_n: RnnStateMut<'_>,
) -> Result<RnnCache> {
    desc.validate()?;
    check_exact("rnn params", desc.params_len(), params.len())?;
    check_exact("rnn x", desc.x_len(), x.len())?;
    check_exact("rnn h0", desc.h_len(), state0.h.len())?;
    check_exact("rnn c0 (empty unless LSTM)", desc.c_len(), state0.c.len())?;
    check_exact("rnn out", desc.out_len(), out.len())?;
    check_exact("rnn hn", desc.h_len(), state_n.h.len())?;
    check_exact("rnn cn (empty unless LSTM)", desc.c_len(), state_n.c.len())?;
    let cache = forward_f64(
        desc,
        widen(params),
        &widen(x),
        &widen(state0.h),
        &widen(state0.c),
    );
    narrow_into(&cache.out(), out);
    narrow_into(&cache.hn(), state_n.h);
    narrow_into(&cache.cn(), state_n.c);
    Ok(cache)
}

/// Backpropagation through time of the forward pass recorded in `cache`.
///
/// Given dout `[batch, seq, hidden]` and the gradients of the final states `dstate_n`
/// (dhn, and dcn for LSTM), writes dx `[batch, seq, input]`, the gradients of the
/// initial states `dstate0` (dh0, dc0) and `dparams`, the gradient of every weight and
/// bias in the flat parameter layout. All outputs are overwritten.
pub fn rnn_backward(
    desc: &RnnDesc,
    cache: &RnnCache,
    dout: &[f32],
    dstate_n: RnnState<'_>,
    dx: &mut [f32],
    dstate0: RnnStateMut<'_>,
    dparams: &mut [f32],
) -> Result<()> {
    desc.validate()?;
    if cache.desc != *desc {
        return Err(KernelError::shape(
            "rnn cache",
            format!("a cache made for {desc:?}"),
            format!("one made for {:?}", cache.desc),
        ));
    }
    check_exact("rnn dout", desc.out_len(), dout.len())?;
    check_exact("rnn dhn", desc.h_len(), dstate_n.h.len())?;
    check_exact(
        "rnn dcn (empty unless LSTM)",
        desc.c_len(),
        dstate_n.c.len(),
    )?;
    check_exact("rnn dx", desc.x_len(), dx.len())?;
    check_exact("rnn dh0", desc.h_len(), dstate0.h.len())?;
    check_exact("rnn dc0 (empty unless LSTM)", desc.c_len(), dstate0.c.len())?;
    check_exact("rnn dparams", desc.params_len(), dparams.len())?;
    let grads = backward_f64(cache, &widen(dout), &widen(dstate_n.h), &widen(dstate_n.c));
    narrow_into(&grads.dx, dx);
    narrow_into(&grads.dh0, dstate0.h);
    narrow_into(&grads.dc0, dstate0.c);
    narrow_into(&grads.dparams, dparams);
    Ok(())
}

fn widen(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v)).collect()
}

fn narrow_into(values: &[f64], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(values) {
        *o = v as f32;
    }
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// out = W·v + bias, with W row-major `[out.len(), v.len()]`.
fn affine(w: &[f64], bias: &[f64], v: &[f64], out: &mut [f64]) {
    let cols = v.len();
    for (r, o) in out.iter_mut().enumerate() {
        *o = bias[r] + (0..cols).map(|k| w[r * cols + k] * v[k]).sum::<f64>();
    }
}

/// out += Wᵀ·d, with W row-major `[d.len(), out.len()]`.
fn add_transposed_product(w: &[f64], d: &[f64], out: &mut [f64]) {
    let cols = out.len();
    for (k, o) in out.iter_mut().enumerate() {
        *o += (0..d.len()).map(|r| w[r * cols + k] * d[r]).sum::<f64>();
    }
}

/// dw += d·vᵀ, with dw row-major `[d.len(), v.len()]`.
fn add_outer(dw: &mut [f64], d: &[f64], v: &[f64]) {
    let cols = v.len();
    for (r, &dr) in d.iter().enumerate() {
        for (k, &vk) in v.iter().enumerate() {
            dw[r * cols + k] += dr * vk;
        }
    }
}

fn add_into(acc: &mut [f64], v: &[f64]) {
    for (a, &b) in acc.iter_mut().zip(v) {
        *a += b;
    }
}

/// The forward pass in f64 on a validated descriptor and inputs of the right lengths
/// (x batch-first, states `[layers, batch, hidden]`).
fn forward_f64(desc: &RnnDesc, params: Vec<f64>, x: &[f64], h0: &[f64], c0: &[f64]) -> RnnCache {
    let (batch, seq, hid) = (desc.batch, desc.seq_len, desc.hidden);
    let rows = desc.kind.gates() * hid;
    let state_len = batch * hid;
    let mut input = vec![0.0; x.len()];
    for b in 0..batch {
        for t in 0..seq {
            let n = desc.input_size;
            input[(t * batch + b) * n..][..n].copy_from_slice(&x[(b * seq + t) * n..][..n]);
        }
    }
    let mut layers = Vec::with_capacity(desc.layers);
    for layer in 0..desc.layers {
        let n_in = desc.layer_input_size(layer);
        let p = desc.ranges(layer);
        let (w_ih, w_hh) = (&params[p.weight_ih], &params[p.weight_hh]);
        let (b_ih, b_hh) = (&params[p.bias_ih], &params[p.bias_hh]);
        let state = layer * state_len..(layer + 1) * state_len;
        let mut h = vec![0.0; (seq + 1) * state_len];
        h[..state_len].copy_from_slice(&h0[state.clone()]);
        let mut c = Vec::new();
        if desc.kind.has_cell_state() {
            c = vec![0.0; (seq + 1) * state_len];
            c[..state_len].copy_from_slice(&c0[state]);
        }
        let mut gates = vec![0.0; seq * batch * rows];
        let mut hh_n = Vec::new();
        if desc.kind == RnnKind::Gru {
            hh_n = vec![0.0; seq * state_len];
        }
        // The input and hidden contributions are kept apart because GRU's r scales
        // only the hidden part of n.
        let mut a_ih = vec![0.0; rows];
        let mut a_hh = vec![0.0; rows];
        for t in 0..seq {
            for b in 0..batch {
                let step = t * batch + b;
                let prev = step * hid;
                let next = prev + state_len;
                affine(w_ih, b_ih, &input[step * n_in..][..n_in], &mut a_ih);
                affine(w_hh, b_hh, &h[prev..prev + hid], &mut a_hh);
                let g = &mut gates[step * rows..][..rows];
                for j in 0..hid {
                    match desc.kind {
                        RnnKind::Lstm => {
                            let pre = |gate: usize| a_ih[gate * hid + j] + a_hh[gate * hid + j];
                            let (i, f, gg, o) = (
                                sigmoid(pre(0)),
                                sigmoid(pre(1)),
                                pre(2).tanh(),
                                sigmoid(pre(3)),
                            );
                            c[next + j] = f * c[prev + j] + i * gg;
                            h[next + j] = o * c[next + j].tanh();
                            (g[j], g[hid + j], g[2 * hid + j], g[3 * hid + j]) = (i, f, gg, o);
                        }
                        RnnKind::Gru => {
                            let r = sigmoid(a_ih[j] + a_hh[j]);
                            let z = sigmoid(a_ih[hid + j] + a_hh[hid + j]);
                            let n = (a_ih[2 * hid + j] + r * a_hh[2 * hid + j]).tanh();
                            h[next + j] = (1.0 - z) * n + z * h[prev + j];
                            hh_n[prev + j] = a_hh[2 * hid + j];
                            (g[j], g[hid + j], g[2 * hid + j]) = (r, z, n);
                        }
                        RnnKind::RnnTanh => {
                            h[next + j] = (a_ih[j] + a_hh[j]).tanh();
                            g[j] = h[next + j];
                        }
                    }
                }
            }
        }
        // The next layer reads this layer's h after every step.
        let next_input = h[state_len..].to_vec();
        layers.push(LayerTrace {
            input: std::mem::replace(&mut input, next_input),
            h,
            c,
            gates,
            hh_n,
        });
    }
    RnnCache {
        desc: *desc,
        params,
        layers,
    }
}

impl RnnCache {
    /// The top layer's h at every step, batch-first `[batch, seq, hidden]`.
    fn out(&self) -> Vec<f64> {
        let RnnDesc {
            batch,
            seq_len: seq,
            hidden: hid,
            ..
        } = self.desc;
        let mut out = vec![0.0; batch * seq * hid];
        if let Some(top) = self.layers.last() {
            for b in 0..batch {
                for t in 0..seq {
                    let after_step = ((t + 1) * batch + b) * hid;
                    out[(b * seq + t) * hid..][..hid].copy_from_slice(&top.h[after_step..][..hid]);
                }
            }
        }
        out
    }

    /// Every layer's h after the last step, `[layers, batch, hidden]`.
    fn hn(&self) -> Vec<f64> {
        self.final_states(|trace| &trace.h)
    }

    /// Every layer's c after the last step (LSTM; empty otherwise).
    fn cn(&self) -> Vec<f64> {
        if !self.desc.kind.has_cell_state() {
            return Vec::new();
        }
        self.final_states(|trace| &trace.c)
    }

    fn final_states(&self, states: impl Fn(&LayerTrace) -> &Vec<f64>) -> Vec<f64> {
        let state_len = self.desc.batch * self.desc.hidden;
        let last = self.desc.seq_len * state_len;
        self.layers
            .iter()
            .flat_map(|trace| states(trace)[last..last + state_len].iter().copied())
            .collect()
    }
}

/// Gradients from [`backward_f64`], laid out as the public outputs.
struct Grads {
    dx: Vec<f64>,
    dh0: Vec<f64>,
    dc0: Vec<f64>,
    dparams: Vec<f64>,
}

/// Backpropagation through time in f64, top layer first, last step first.
fn backward_f64(cache: &RnnCache, dout: &[f64], dhn: &[f64], dcn: &[f64]) -> Grads {
    let desc = &cache.desc;
    let (batch, seq, hid) = (desc.batch, desc.seq_len, desc.hidden);
    let rows = desc.kind.gates() * hid;
    let state_len = batch * hid;
    let mut dparams = vec![0.0; cache.params.len()];
    let mut dh0 = vec![0.0; desc.layers * state_len];
    let mut dc0 = vec![0.0; dcn.len()];
    // Gradient reaching the current layer's output sequence, time-major; dout at the top.
    let mut d_seq = vec![0.0; seq * state_len];
    for b in 0..batch {
        for t in 0..seq {
            d_seq[(t * batch + b) * hid..][..hid]
                .copy_from_slice(&dout[(b * seq + t) * hid..][..hid]);
        }
    }
    for layer in (0..desc.layers).rev() {
        let trace = &cache.layers[layer];
        let n_in = desc.layer_input_size(layer);
        let p = desc.ranges(layer);
        let (w_ih, w_hh) = (
            &cache.params[p.weight_ih.clone()],
            &cache.params[p.weight_hh.clone()],
        );
        let state = layer * state_len..(layer + 1) * state_len;
        // Gradients flowing back into h (and c) from the step after the current one.
        let mut dh_next = dhn[state.clone()].to_vec();
        let mut dc_next = Vec::new();
        if desc.kind.has_cell_state() {
            dc_next = dcn[state.clone()].to_vec();
        }
        let mut d_input = vec![0.0; seq * batch * n_in];
        let mut dw_ih = vec![0.0; rows * n_in];
        let mut dw_hh = vec![0.0; rows * hid];
        let mut db_ih = vec![0.0; rows];
        let mut db_hh = vec![0.0; rows];
        // Gradients of the gates' pre-activations, input side and hidden side; they differ
        // only for GRU's n, whose hidden part is scaled by r.
        let mut d_ih = vec![0.0; rows];
        let mut d_hh = vec![0.0; rows];
        let mut dh_prev = vec![0.0; hid];
        for t in (0..seq).rev() {
            for b in 0..batch {
                let step = t * batch + b;
                let prev = step * hid;
                let next = prev + state_len;
                let g = &trace.gates[step * rows..][..rows];
                for j in 0..hid {
                    let dh = d_seq[prev + j] + dh_next[b * hid + j];
                    // The part of dh_prev that bypasses W_hh (GRU's z ⊙ h).
                    dh_prev[j] = 0.0;
                    match desc.kind {
                        RnnKind::Lstm => {
                            let (i, f, gg, o) = (g[j], g[hid + j], g[2 * hid + j], g[3 * hid + j]);
                            let tanh_c = trace.c[next + j].tanh();
                            let dc = dc_next[b * hid + j] + dh * o * (1.0 - tanh_c * tanh_c);
                            d_ih[j] = dc * gg * i * (1.0 - i);
                            d_ih[hid + j] = dc * trace.c[prev + j] * f * (1.0 - f);
                            d_ih[2 * hid + j] = dc * i * (1.0 - gg * gg);
                            d_ih[3 * hid + j] = dh * tanh_c * o * (1.0 - o);
                            dc_next[b * hid + j] = dc * f;
                        }
                        RnnKind::Gru => {
                            let (r, z, n) = (g[j], g[hid + j], g[2 * hid + j]);
                            let dn = dh * (1.0 - z) * (1.0 - n * n);
                            d_ih[j] = dn * trace.hh_n[prev + j] * r * (1.0 - r);
                            d_ih[hid + j] = dh * (trace.h[prev + j] - n) * z * (1.0 - z);
                            d_ih[2 * hid + j] = dn;
                            dh_prev[j] = dh * z;
                        }
                        RnnKind::RnnTanh => {
                            d_ih[j] = dh * (1.0 - g[j] * g[j]);
                        }
                    }
                }
                d_hh.copy_from_slice(&d_ih);
                if desc.kind == RnnKind::Gru {
                    for j in 0..hid {
                        d_hh[2 * hid + j] *= g[j];
                    }
                }
                let x_step = &trace.input[step * n_in..][..n_in];
                add_outer(&mut dw_ih, &d_ih, x_step);
                add_outer(&mut dw_hh, &d_hh, &trace.h[prev..prev + hid]);
                add_into(&mut db_ih, &d_ih);
                add_into(&mut db_hh, &d_hh);
                add_transposed_product(w_ih, &d_ih, &mut d_input[step * n_in..][..n_in]);
                add_transposed_product(w_hh, &d_hh, &mut dh_prev);
                dh_next[b * hid..][..hid].copy_from_slice(&dh_prev);
            }
        }
        dh0[state.clone()].copy_from_slice(&dh_next);
        if desc.kind.has_cell_state() {
            dc0[state].copy_from_slice(&dc_next);
        }
        dparams[p.weight_ih].copy_from_slice(&dw_ih);
        dparams[p.weight_hh].copy_from_slice(&dw_hh);
        dparams[p.bias_ih].copy_from_slice(&db_ih);
        dparams[p.bias_hh].copy_from_slice(&db_hh);
        // The layer below produced this layer's input: its output gradient is d_input.
        d_seq = d_input;
    }
    // After layer 0, d_seq is dx, time-major.
    let n = desc.input_size;
    let mut dx = vec![0.0; batch * seq * n];
    for b in 0..batch {
        for t in 0..seq {
            dx[(b * seq + t) * n..][..n].copy_from_slice(&d_seq[(t * batch + b) * n..][..n]);
        }
    }
    Grads {
        dx,
        dh0,
        dc0,
        dparams,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64: a small deterministic generator, so that the tests need no crate.
    struct SplitMix(u64);

    impl SplitMix {
        /// Uniform in [-1, 1).
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        }

        fn vec(&mut self, len: usize) -> Vec<f64> {
            (0..len).map(|_| self.next()).collect()
        }
    }

    fn desc(kind: RnnKind, layers: usize) -> RnnDesc {
        RnnDesc {
            kind,
            input_size: 3,
            hidden: 2,
            layers,
            batch: 2,
            seq_len: 3,
        }
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// Everything the loss depends on, as f64.
    #[derive(Clone)]
    struct Case {
        params: Vec<f64>,
        x: Vec<f64>,
        h0: Vec<f64>,
        c0: Vec<f64>,
    }

    /// The scalar whose gradient backward computes given (dout, dhn, dcn):
    /// L = Σ dout ⊙ out + Σ dhn ⊙ hn + Σ dcn ⊙ cn.
    fn loss(desc: &RnnDesc, case: &Case, dout: &[f64], dhn: &[f64], dcn: &[f64]) -> f64 {
        let cache = forward_f64(desc, case.params.clone(), &case.x, &case.h0, &case.c0);
        dot(&cache.out(), dout) + dot(&cache.hn(), dhn) + dot(&cache.cn(), dcn)
    }

    /// Compares `analytic` with central differences of `loss_at` around `at`.
    fn assert_matches_differences(
        what: &str,
        at: &[f64],
        analytic: &[f64],
        loss_at: impl Fn(&[f64]) -> f64,
    ) {
        assert_eq!(at.len(), analytic.len(), "{what}: lengths");
        let eps = 1e-6;
        for i in 0..at.len() {
            let mut moved = at.to_vec();
            moved[i] = at[i] + eps;
            let up = loss_at(&moved);
            moved[i] = at[i] - eps;
            let down = loss_at(&moved);
            let numeric = (up - down) / (2.0 * eps);
            // Central differences in f64 are good to ~1e-9 here; a wrong term is ~1e-2.
            assert!(
                (numeric - analytic[i]).abs() <= 1e-7 * (1.0 + analytic[i].abs()),
                "{what}[{i}]: backward {}, finite differences {numeric}",
                analytic[i]
            );
        }
    }

    fn check_gradients(desc: RnnDesc, seed: u64) {
        desc.validate().unwrap();
        let mut rng = SplitMix(seed);
        let case = Case {
            params: rng.vec(desc.params_len()),
            x: rng.vec(desc.x_len()),
            h0: rng.vec(desc.h_len()),
            c0: rng.vec(desc.c_len()),
        };
        let dout = rng.vec(desc.out_len());
        let dhn = rng.vec(desc.h_len());
        let dcn = rng.vec(desc.c_len());
        let cache = forward_f64(&desc, case.params.clone(), &case.x, &case.h0, &case.c0);
        let grads = backward_f64(&cache, &dout, &dhn, &dcn);
        let loss_with = |edit: &dyn Fn(&mut Case)| {
            let mut moved = case.clone();
            edit(&mut moved);
            loss(&desc, &moved, &dout, &dhn, &dcn)
        };
        let name = format!("{:?} × {} layers", desc.kind, desc.layers);
        assert_matches_differences(&format!("{name} dx"), &case.x, &grads.dx, |v| {
            loss_with(&|c| c.x = v.to_vec())
        });
        assert_matches_differences(&format!("{name} dh0"), &case.h0, &grads.dh0, |v| {
            loss_with(&|c| c.h0 = v.to_vec())
        });
        assert_matches_differences(&format!("{name} dc0"), &case.c0, &grads.dc0, |v| {
            loss_with(&|c| c.c0 = v.to_vec())
        });
        assert_matches_differences(
            &format!("{name} dparams"),
            &case.params,
            &grads.dparams,
            |v| loss_with(&|c| c.params = v.to_vec()),
        );
    }

    #[test]
    fn lstm_gradients_match_finite_differences() {
        check_gradients(desc(RnnKind::Lstm, 1), 1);
        check_gradients(desc(RnnKind::Lstm, 2), 2);
    }

    #[test]
    fn gru_gradients_match_finite_differences() {
        check_gradients(desc(RnnKind::Gru, 1), 3);
        check_gradients(desc(RnnKind::Gru, 2), 4);
    }

    #[test]
    fn tanh_rnn_gradients_match_finite_differences() {
        check_gradients(desc(RnnKind::RnnTanh, 1), 5);
        check_gradients(desc(RnnKind::RnnTanh, 2), 6);
    }

    #[test]
    fn deeper_stacks_and_odd_sizes_match_finite_differences() {
        // Input wider than hidden and three layers, so that layer sizes differ.
        let d = RnnDesc {
            input_size: 4,
            hidden: 3,
            layers: 3,
            batch: 1,
            seq_len: 2,
            ..desc(RnnKind::Lstm, 3)
        };
        for (kind, seed) in [(RnnKind::Lstm, 7), (RnnKind::Gru, 8), (RnnKind::RnnTanh, 9)] {
            check_gradients(RnnDesc { kind, ..d }, seed);
        }
    }

    /// One step of every cell with hidden = input = batch = 1, written out by hand.
    fn one_step(kind: RnnKind, params: &[f32], x: f32, h0: f32, c0: &[f32]) -> (f32, Vec<f32>) {
        let d = RnnDesc {
            kind,
            input_size: 1,
            hidden: 1,
            layers: 1,
            batch: 1,
            seq_len: 1,
        };
        let (mut out, mut hn, mut cn) = ([0.0], [0.0], vec![0.0; c0.len()]);
        rnn_forward(
            &d,
            params,
            &[x],
            RnnState { h: &[h0], c: c0 },
            &mut out,
            RnnStateMut {
                h: &mut hn,
                c: &mut cn,
            },
        )
        .unwrap();
        assert_eq!(out, hn);
        (hn[0], cn)
    }

    fn sigmoid64(v: f64) -> f64 {
        1.0 / (1.0 + (-v).exp())
    }

    #[test]
    fn one_step_by_hand() {
        let (x, h) = (0.5f64, -0.25f64);
        // Tanh RNN: params w_ih, w_hh, b_ih, b_hh.
        let (hn, _) = one_step(RnnKind::RnnTanh, &[0.3, -0.7, 0.1, 0.2], 0.5, -0.25, &[]);
        let expected = (0.3 * x + 0.1 + -0.7 * h + 0.2).tanh();
        assert!((f64::from(hn) - expected).abs() < 1e-7);

        // GRU rows r, z, n. A nonzero b_hn with r < 1 tells r ⊙ (W_hn h + b_hn) apart
        // from W_hn (r ⊙ h) + b_hn.
        let w_ih = [0.4, -0.2, 0.9];
        let w_hh = [0.6, 0.3, -0.8];
        let b_ih = [0.05, -0.1, 0.2];
        let b_hh = [-0.3, 0.15, 0.7];
        let params: Vec<f32> = [w_ih, w_hh, b_ih, b_hh].concat();
        let (hn, _) = one_step(RnnKind::Gru, &params, 0.5, -0.25, &[]);
        let gate = |k: usize| f64::from(w_ih[k]) * x + f64::from(b_ih[k]);
        let hidden = |k: usize| f64::from(w_hh[k]) * h + f64::from(b_hh[k]);
        let r = sigmoid64(gate(0) + hidden(0));
        let z = sigmoid64(gate(1) + hidden(1));
        let n = (gate(2) + r * hidden(2)).tanh();
        let expected = (1.0 - z) * n + z * h;
        assert!((f64::from(hn) - expected).abs() < 1e-7);

        // LSTM rows i, f, g, o.
        let w_ih = [0.4, -0.2, 0.9, 0.1];
        let w_hh = [0.6, 0.3, -0.8, 0.5];
        let b_ih = [0.05, -0.1, 0.2, 0.0];
        let b_hh = [-0.3, 0.15, 0.7, -0.4];
        let params: Vec<f32> = [w_ih, w_hh, b_ih, b_hh].concat();
        let c = 0.8f64;
        let (hn, cn) = one_step(RnnKind::Lstm, &params, 0.5, -0.25, &[0.8]);
        let pre = |k: usize| {
            f64::from(w_ih[k]) * x
                + f64::from(b_ih[k])
                + f64::from(w_hh[k]) * h
                + f64::from(b_hh[k])
        };
        let (i, f, g, o) = (
            sigmoid64(pre(0)),
            sigmoid64(pre(1)),
            pre(2).tanh(),
            sigmoid64(pre(3)),
        );
        let c_new = f * c + i * g;
        assert!((f64::from(cn[0]) - c_new).abs() < 1e-7);
        assert!((f64::from(hn) - o * c_new.tanh()).abs() < 1e-7);
    }

    /// Buffers for a public call, filled from the generator.
    struct Buffers {
        params: Vec<f32>,
        x: Vec<f32>,
        h0: Vec<f32>,
        c0: Vec<f32>,
        out: Vec<f32>,
        hn: Vec<f32>,
        cn: Vec<f32>,
        dout: Vec<f32>,
        dhn: Vec<f32>,
        dcn: Vec<f32>,
        dparams: Vec<f32>,
        dx: Vec<f32>,
        dh0: Vec<f32>,
        dc0: Vec<f32>,
    }

    impl Buffers {
        fn new(d: &RnnDesc, seed: u64) -> Buffers {
            let mut rng = SplitMix(seed);
            let mut random = |len| rng.vec(len).into_iter().map(|v| v as f32).collect();
            Buffers {
                params: random(d.params_len()),
                x: random(d.x_len()),
                h0: random(d.h_len()),
                c0: random(d.c_len()),
                out: vec![0.0; d.out_len()],
                hn: vec![0.0; d.h_len()],
                cn: vec![0.0; d.c_len()],
                dout: random(d.out_len()),
                dhn: random(d.h_len()),
                dcn: random(d.c_len()),
                dparams: vec![f32::NAN; d.params_len()],
                dx: vec![f32::NAN; d.x_len()],
                dh0: vec![f32::NAN; d.h_len()],
                dc0: vec![f32::NAN; d.c_len()],
            }
        }

        fn forward(&mut self, d: &RnnDesc) -> Result<RnnCache> {
            rnn_forward(
                d,
                &self.params,
                &self.x,
                RnnState {
                    h: &self.h0,
                    c: &self.c0,
                },
                &mut self.out,
                RnnStateMut {
                    h: &mut self.hn,
                    c: &mut self.cn,
                },
            )
        }

        fn backward(&mut self, d: &RnnDesc, cache: &RnnCache) -> Result<()> {
            rnn_backward(
                d,
                cache,
                &self.dout,
                RnnState {
                    h: &self.dhn,
                    c: &self.dcn,
                },
                &mut self.dx,
                RnnStateMut {
                    h: &mut self.dh0,
                    c: &mut self.dc0,
                },
                &mut self.dparams,
            )
        }
    }

    #[test]
    fn empty_sequence_passes_the_state_through() {
        let d = RnnDesc {
            seq_len: 0,
            ..desc(RnnKind::Lstm, 2)
        };
        let mut buf = Buffers::new(&d, 10);
        let cache = buf.forward(&d).unwrap();
        assert_eq!(
            (buf.hn.clone(), buf.cn.clone()),
            (buf.h0.clone(), buf.c0.clone())
        );
        buf.backward(&d, &cache).unwrap();
        assert_eq!((&buf.dh0, &buf.dc0), (&buf.dhn, &buf.dcn));
        assert!(buf.dparams.iter().all(|&g| g == 0.0));
    }

    #[test]
    fn parameter_ranges_tile_the_buffer_in_pytorch_order() {
        let d = desc(RnnKind::Gru, 3);
        let mut expected_start = 0;
        for layer in 0..3 {
            let p = d.layer_params(layer).unwrap();
            let n_in = if layer == 0 { 3 } else { 2 };
            for (range, len) in [
                (p.weight_ih, 6 * n_in),
                (p.weight_hh, 6 * 2),
                (p.bias_ih, 6),
                (p.bias_hh, 6),
            ] {
                assert_eq!(range, expected_start..expected_start + len);
                expected_start += len;
            }
        }
        assert_eq!(expected_start, d.params_len());
        assert!(d.layer_params(3).is_err());
    }

    #[test]
    fn bad_descriptors_are_errors() {
        let good = desc(RnnKind::Lstm, 2);
        let bad = [
            RnnDesc { hidden: 0, ..good },
            RnnDesc { layers: 0, ..good },
            RnnDesc {
                batch: usize::MAX,
                ..good
            },
            RnnDesc {
                input_size: usize::MAX / 2,
                ..good
            },
            RnnDesc {
                layers: usize::MAX,
                ..good
            },
        ];
        for d in bad {
            assert!(d.validate().is_err(), "{d:?}");
            assert!(Buffers::new(&good, 11).forward(&d).is_err(), "{d:?}");
        }
    }

    #[test]
    fn bad_lengths_are_errors() {
        for kind in [RnnKind::Lstm, RnnKind::Gru, RnnKind::RnnTanh] {
            let d = desc(kind, 2);
            let mut good = Buffers::new(&d, 12);
            let cache = good.forward(&d).unwrap();
            good.backward(&d, &cache).unwrap();
            // One element too many or too few in each buffer in turn; for GRU and
            // tanh RNN the empty c buffers can only grow.
            type Pick = fn(&mut Buffers) -> &mut Vec<f32>;
            let picks: [(&str, Pick); 14] = [
                ("params", |b| &mut b.params),
                ("x", |b| &mut b.x),
                ("h0", |b| &mut b.h0),
                ("c0", |b| &mut b.c0),
                ("out", |b| &mut b.out),
                ("hn", |b| &mut b.hn),
                ("cn", |b| &mut b.cn),
                ("dout", |b| &mut b.dout),
                ("dhn", |b| &mut b.dhn),
                ("dcn", |b| &mut b.dcn),
                ("dparams", |b| &mut b.dparams),
                ("dx", |b| &mut b.dx),
                ("dh0", |b| &mut b.dh0),
                ("dc0", |b| &mut b.dc0),
            ];
            for (name, pick) in picks {
                for grow in [false, true] {
                    let mut buf = Buffers::new(&d, 12);
                    let v = pick(&mut buf);
                    if grow {
                        v.push(0.0);
                    } else if v.pop().is_none() {
                        continue;
                    }
                    let failed = match buf.forward(&d) {
                        Err(_) => true,
                        Ok(cache) => buf.backward(&d, &cache).is_err(),
                    };
                    assert!(failed, "{kind:?}: {name} (grow {grow}) was accepted");
                }
            }
        }
    }

    #[test]
    fn a_cache_from_another_shape_is_an_error() {
        let d = desc(RnnKind::Gru, 1);
        let mut buf = Buffers::new(&d, 13);
        let cache = buf.forward(&d).unwrap();
        let other = RnnDesc {
            kind: RnnKind::RnnTanh,
            ..d
        };
        let mut other_buf = Buffers::new(&other, 13);
        other_buf.forward(&other).unwrap();
        assert!(other_buf.backward(&other, &cache).is_err());
    }
}
