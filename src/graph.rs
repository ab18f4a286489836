//! The graph: named layers wired into a DAG, with buffers planned once per batch size.
//!
//! A [`GraphBuilder`] (or the [`Sequential`] shorthand) collects layers; [`build`]
//! fuses what the kernels can do in one pass (a convolution or linear layer followed by
//! an activation whose gradient reads the output), hands a ReLU's gradient mask to a
//! max-pool that alone reads it, and checks every shape. The graph
//! then owns one output and one gradient tensor per node, sized on the first pass with
//! a batch size and reused by every later pass, so a training step allocates nothing.
//!
//! [`build`]: GraphBuilder::build

use crate::error::{Error, Result};
use crate::layer::{Context, Flops, Layer};
use crate::param::Param;
use crate::tensor::Tensor;
use axonal_kernels::Layout;
use std::time::Instant;

/// A node's output in a [`GraphBuilder`]: the graph input or a layer's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeId(usize);

struct Node {
    /// The name its parameters carry (`conv1` → `conv1.weight`).
    name: String,
    /// What the profile shows: the name and the names of fused layers (`conv1+relu1`).
    label: String,
    layer: Box<dyn Layer>,
    /// Value ids: 0 is the graph input, i + 1 the output of node i.
    inputs: Vec<usize>,
}

/// Collects named layers and their wiring.
pub struct GraphBuilder {
    sample_shape: Vec<usize>,
    nodes: Vec<Node>,
    layout: Layout,
}

impl GraphBuilder {
    /// A graph whose input is a batch of samples of `sample_shape` (e.g. `[1, 28, 28]`).
    pub fn new(sample_shape: &[usize]) -> GraphBuilder {
        GraphBuilder {
            sample_shape: sample_shape.to_vec(),
            nodes: Vec::new(),
            layout: Layout::Nchw,
        }
    }

    /// The memory layout of the graph's 4-D activations (NCHW by default). The input is
    /// always given in NCHW, PyTorch's order; with NHWC the graph transposes it.
    pub fn layout(&mut self, layout: Layout) -> &mut Self {
        self.layout = layout;
        self
    }

    /// The graph input.
    pub fn input(&self) -> NodeId {
        NodeId(0)
    }

    /// Adds `layer` under `name`, fed by `inputs`; its parameters are named
    /// `name.weight`, `name.bias`, ... as in PyTorch.
    pub fn add(
        &mut self,
        name: &str,
        mut layer: impl Layer + 'static,
        inputs: &[NodeId],
    ) -> Result<NodeId> {
        if name.is_empty() || self.nodes.iter().any(|n| n.name == name) {
            return Err(Error::invalid(
                "graph node name",
                format!("{name:?} is empty or already used"),
            ));
        }
        if let Some(bad) = inputs.iter().find(|id| id.0 > self.nodes.len()) {
            return Err(Error::invalid(
                "graph wiring",
                format!("{name} reads node {} which does not exist yet", bad.0),
            ));
        }
        layer.visit_params(&mut |p| p.name = format!("{name}.{}", p.name));
        self.nodes.push(Node {
            name: name.to_string(),
            label: name.to_string(),
            layer: Box::new(layer),
            inputs: inputs.iter().map(|id| id.0).collect(),
        });
        Ok(NodeId(self.nodes.len()))
    }

    /// The graph computing `output`: fuses activations into their producers and checks
    /// every shape for a batch of one.
    pub fn build(self, output: NodeId) -> Result<Graph> {
        if output.0 == 0 || output.0 > self.nodes.len() {
            return Err(Error::invalid(
                "graph output",
                "must be the output of a layer",
            ));
        }
        let (mut nodes, output) = fuse(self.nodes, output.0);
        move_relu_masks(&mut nodes, output);
        let count = nodes.len() + 1;
        let mut graph = Graph {
            nodes,
            layout: Layout::Nchw,
            input_nchw: None,
            sample_shape: self.sample_shape,
            values: vec![Tensor::default(); count],
            grads: vec![Vec::new(); count],
            written: vec![false; count],
            needs_grad: vec![false; count],
            scratch: [Vec::new(), Vec::new()],
            output,
            batch: None,
            timing: None,
        };
        graph.set_layout(self.layout);
        graph.mark_gradients();
        graph.plan(1)?;
        Ok(graph)
    }
}

/// Folds each activation node into the node feeding it when that node has no other
/// reader and can apply it in its epilogue. Returns the nodes and the output's new id.
fn fuse(nodes: Vec<Node>, output: usize) -> (Vec<Node>, usize) {
    let readers = readers(&nodes);
    // new_id[v]: where value v lives after fusion.
    let mut new_id = vec![0usize; nodes.len() + 1];
    let mut kept: Vec<Node> = Vec::with_capacity(nodes.len());
    for (i, mut node) in nodes.into_iter().enumerate() {
        node.inputs.iter_mut().for_each(|v| *v = new_id[*v]);
        let producer = match (node.layer.as_activation(), &node.inputs[..]) {
            (Some(act), &[src])
                if src > 0
                    && readers[old_of(&new_id, src)] == 1
                    && old_of(&new_id, src) != output =>
            {
                let target = &mut kept[src - 1];
                target.layer.fuse_activation(act).then_some(src)
            }
            _ => None,
        };
        match producer {
            Some(src) => {
                let target = &mut kept[src - 1];
                target.label = format!("{}+{}", target.label, node.label);
                new_id[i + 1] = src;
            }
            None => {
                kept.push(node);
                new_id[i + 1] = kept.len();
            }
        }
    }
    (kept, new_id[output])
}

/// Where a fused ReLU's output is read only by a max-pool, the pool masks its own output
/// gradient by its output > 0 (a quarter of the values, for 2×2 windows) and the
/// producer's backward skips reading its full-size output for the mask: the same
/// gradient, one pass over a large tensor fewer.
fn move_relu_masks(nodes: &mut [Node], output: usize) {
    let readers = readers(nodes);
    for reader in 0..nodes.len() {
        let &[src] = &nodes[reader].inputs[..] else {
            continue;
        };
        if src == 0 || src == output || readers[src] != 1 {
            continue;
        }
        // Values are numbered after the graph input: node src − 1 produces value src,
        // and it comes before its reader.
        let (before, rest) = nodes.split_at_mut(reader);
        let producer = &mut before[src - 1].layer;
        if producer.ends_in_relu() && rest[0].layer.take_relu_mask() {
            producer.relu_mask_taken_downstream();
        }
    }
}

/// How many node inputs read each value (0 is the graph input, i + 1 node i's output).
fn readers(nodes: &[Node]) -> Vec<usize> {
    let mut readers = vec![0usize; nodes.len() + 1];
    for node in nodes {
        for &i in &node.inputs {
            readers[i] += 1;
        }
    }
    readers
}

/// The original id of the value that now lives at `new` (the last one mapped there).
fn old_of(new_id: &[usize], new: usize) -> usize {
    new_id.iter().rposition(|&v| v == new).unwrap_or(0)
}

/// Per-node wall time of the passes since the last reset, in seconds, and optionally
/// every pass as an event.
#[derive(Debug, Clone)]
struct Timing {
    forward: Vec<f64>,
    backward: Vec<f64>,
    /// (node, backward?, start, seconds), with start in seconds since `origin`.
    events: Option<Vec<PassEvent>>,
    origin: Instant,
}

/// One layer pass, for timelines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassEvent {
    pub node: usize,
    pub backward: bool,
    /// Seconds since timing was turned on.
    pub start: f64,
    pub seconds: f64,
}

impl Timing {
    fn record(&mut self, node: usize, backward: bool, start: Instant) {
        let seconds = start.elapsed().as_secs_f64();
        if backward {
            self.backward[node] += seconds;
        } else {
            self.forward[node] += seconds;
        }
        if let Some(events) = &mut self.events {
            events.push(PassEvent {
                node,
                backward,
                start: start.duration_since(self.origin).as_secs_f64(),
                seconds,
            });
        }
    }
}

/// What the profile shows about a node.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub label: String,
    pub kind: String,
    pub output_shape: Vec<usize>,
    pub flops: Flops,
    /// Floating-point operations of the backward pass as the graph runs it (no input
    /// gradient for a layer reading the graph input).
    pub backward_flops: f64,
    /// Bytes one forward pass moves at least.
    pub bytes: f64,
}

/// A built network: run [`forward`](Graph::forward) and [`backward`](Graph::backward).
pub struct Graph {
    nodes: Vec<Node>,
    layout: Layout,
    /// Where the NCHW input is written before it is transposed into values[0], when the
    /// graph is NHWC.
    input_nchw: Option<Tensor>,
    sample_shape: Vec<usize>,
    /// values[0] is the input, values[i + 1] the output of node i.
    values: Vec<Tensor>,
    /// ∂loss/∂values[v] during backward (grads[0] is never filled: no input gradient).
    grads: Vec<Vec<f32>>,
    /// Whether grads[v] already holds a contribution in this backward pass.
    written: Vec<bool>,
    /// Whether ∂loss/∂values[v] is needed: some layer at or before v has parameters.
    /// (The input's is never computed, nor that of anything computed from the input
    /// alone, such as a flattened input.)
    needs_grad: Vec<bool>,
    /// Where a second contribution to a gradient is computed before it is added.
    scratch: [Vec<f32>; 2],
    output: usize,
    batch: Option<usize>,
    timing: Option<Timing>,
}

impl Graph {
    /// Marks the values whose gradient backward must compute.
    fn mark_gradients(&mut self) {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let mut params = 0;
            node.layer.visit_params(&mut |_| params += 1);
            let upstream = node.inputs.iter().any(|&v| self.needs_grad[v]);
            self.needs_grad[i + 1] = params > 0 || upstream;
        }
    }

    /// The shape of one sample of the input.
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// Sizes every buffer for `batch` samples (allocating only for a batch larger than
    /// any before).
    fn plan(&mut self, batch: usize) -> Result<()> {
        if self.batch == Some(batch) {
            return Ok(());
        }
        let mut shape = vec![batch];
        shape.extend_from_slice(&self.sample_shape);
        self.values[0].reshape_storage(&shape)?;
        // The input buffer the user fills is NCHW; values[0] is in the graph's layout
        // (transposed from that buffer when they differ).
        self.values[0].set_layout(self.layout);
        if let Some(t) = &mut self.input_nchw {
            t.reshape_storage(&shape)?;
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let inputs: Vec<&[usize]> = node
                .inputs
                .iter()
                .map(|&v| self.values[v].shape())
                .collect();
            let out = node.layer.output_shape(&inputs).map_err(|e| match e {
                Error::Shape {
                    what,
                    expected,
                    got,
                } => Error::Shape {
                    what: format!("{} ({what})", node.name),
                    expected,
                    got,
                },
                e => e,
            })?;
            self.values[i + 1].reshape_storage(&out)?;
            self.values[i + 1].set_layout(self.layout);
            let len = self.values[i + 1].len();
            self.grads[i + 1].resize(len, 0.0);
        }
        self.batch = Some(batch);
        Ok(())
    }

    /// The input buffer for a batch of `batch` samples, to be filled before
    /// [`forward`](Graph::forward).
    pub fn input_mut(&mut self, batch: usize) -> Result<&mut [f32]> {
        if batch == 0 {
            return Err(Error::invalid("batch size", "must be at least 1, got 0"));
        }
        self.plan(batch)?;
        match &mut self.input_nchw {
            Some(t) => Ok(t.data_mut()),
            None => Ok(self.values[0].data_mut()),
        }
    }

    /// The layout of the graph's 4-D activations.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Switches the layout of the 4-D activations (the input stays NCHW; parameters
    /// keep PyTorch's layouts). Buffers are planned again at the next pass.
    pub fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
        for node in &mut self.nodes {
            node.layer.set_layout(layout);
        }
        // NHWC images with more than one channel differ from the NCHW input.
        let transpose = layout == Layout::Nhwc
            && matches!(self.sample_shape[..], [c, h, w] if c > 1 && h * w > 1);
        self.input_nchw = transpose.then(Tensor::default);
        self.batch = None;
    }

    /// The input tensor of the last pass.
    pub fn input(&self) -> &Tensor {
        &self.values[0]
    }

    /// Runs every layer on the input written through [`input_mut`](Graph::input_mut).
    pub fn forward(&mut self, ctx: &Context) -> Result<&Tensor> {
        if self.batch.is_none() {
            return Err(Error::invalid("forward", "no input was given"));
        }
        let Graph {
            nodes,
            values,
            timing,
            input_nchw,
            ..
        } = self;
        if let Some(src) = input_nchw {
            nchw_to_nhwc(src, &mut values[0]);
        }
        for (i, node) in nodes.iter_mut().enumerate() {
            let start = timing.as_ref().map(|_| Instant::now());
            let mut y = std::mem::take(&mut values[i + 1]);
            let result = match node.inputs[..] {
                [a] => node.layer.forward(ctx, &[&values[a]], &mut y),
                [a, b] => node.layer.forward(ctx, &[&values[a], &values[b]], &mut y),
                _ => Err(Error::invalid(
                    "graph node",
                    format!(
                        "{} has {} inputs; 1 or 2 are supported",
                        node.name,
                        node.inputs.len()
                    ),
                )),
            };
            values[i + 1] = y;
            result?;
            if let (Some(t), Some(start)) = (timing.as_mut(), start) {
                t.record(i, false, start);
            }
        }
        Ok(&self.values[self.output])
    }

    /// The output of the last forward pass.
    pub fn output(&self) -> &Tensor {
        &self.values[self.output]
    }

    /// The output of the last forward pass and the buffer for ∂loss/∂output.
    pub fn output_and_grad(&mut self) -> (&Tensor, &mut [f32]) {
        (&self.values[self.output], &mut self.grads[self.output])
    }

    /// Where the loss writes ∂loss/∂output before [`backward`](Graph::backward).
    pub fn output_grad_mut(&mut self) -> &mut [f32] {
        &mut self.grads[self.output]
    }

    /// Back-propagates the gradient written through
    /// [`output_grad_mut`](Graph::output_grad_mut): overwrites every parameter's
    /// gradient. The input's gradient is not computed.
    pub fn backward(&mut self, ctx: &Context) -> Result<()> {
        if self.batch.is_none() {
            return Err(Error::invalid("backward", "no forward pass was run"));
        }
        let Graph {
            nodes,
            values,
            grads,
            written,
            needs_grad,
            scratch,
            timing,
            output,
            ..
        } = self;
        written.iter_mut().for_each(|w| *w = false);
        written[*output] = true;
        for (i, node) in nodes.iter_mut().enumerate().rev() {
            let v = i + 1;
            if !written[v] || !needs_grad[v] {
                // Nothing downstream reads this node (a dead branch): no gradient.
                continue;
            }
            let start = timing.as_ref().map(|_| Instant::now());
            let mut dy = std::mem::take(&mut grads[v]);
            // For each input: the buffer its gradient goes to, and whether that buffer is
            // scratch to be added to a gradient already written.
            let mut targets: [Option<Vec<f32>>; 2] = [None, None];
            let mut adds = [false; 2];
            for (k, &j) in node.inputs.iter().enumerate().take(2) {
                if !needs_grad[j] {
                    continue;
                }
                let repeated = k == 1 && node.inputs[0] == j;
                if written[j] || repeated {
                    let mut s = std::mem::take(&mut scratch[k]);
                    s.resize(values[j].len(), 0.0);
                    targets[k] = Some(s);
                    adds[k] = true;
                } else {
                    targets[k] = Some(std::mem::take(&mut grads[j]));
                }
            }
            let result = {
                let [t0, t1] = &mut targets;
                let mut dx = [t0.as_deref_mut(), t1.as_deref_mut()];
                let dx = &mut dx[..node.inputs.len().min(2)];
                match node.inputs[..] {
                    [a] => node
                        .layer
                        .backward(ctx, &[&values[a]], &values[v], &mut dy, dx),
                    [a, b] => {
                        node.layer
                            .backward(ctx, &[&values[a], &values[b]], &values[v], &mut dy, dx)
                    }
                    _ => Ok(()),
                }
            };
            grads[v] = dy;
            for (k, target) in targets.into_iter().enumerate() {
                let Some(buffer) = target else { continue };
                let j = node.inputs[k];
                if adds[k] {
                    for (g, s) in grads[j].iter_mut().zip(&buffer) {
                        *g += s;
                    }
                    scratch[k] = buffer;
                } else {
                    grads[j] = buffer;
                    written[j] = true;
                }
            }
            result?;
            if let (Some(t), Some(start)) = (timing.as_mut(), start) {
                t.record(i, true, start);
            }
        }
        Ok(())
    }

    /// Calls `f` on every parameter, in graph order.
    pub fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param)) {
        for node in &mut self.nodes {
            node.layer.visit_params(f);
        }
    }

    /// Calls `f` on every persistent buffer (running statistics) with its full name.
    pub fn visit_buffers(&mut self, f: &mut dyn FnMut(&str, &mut Vec<f32>)) {
        let mut name = String::new();
        for node in &mut self.nodes {
            node.layer.visit_buffers(&mut |local, buffer| {
                name.clear();
                name.push_str(&node.name);
                name.push('.');
                name.push_str(local);
                f(&name, buffer);
            });
        }
    }

    /// Number of trainable values.
    pub fn param_count(&mut self) -> usize {
        let mut count = 0;
        self.visit_params(&mut |p| count += p.len());
        count
    }

    /// Turns per-node timing of the passes on (and clears it) or off; with `events`,
    /// every pass is also recorded for a timeline (which allocates as it grows).
    pub fn set_timing(&mut self, on: bool, events: bool) {
        self.timing = on.then(|| Timing {
            forward: vec![0.0; self.nodes.len()],
            backward: vec![0.0; self.nodes.len()],
            events: events.then(Vec::new),
            origin: Instant::now(),
        });
    }

    /// The instant pass events are measured from, when timing is on.
    pub fn timing_origin(&self) -> Option<Instant> {
        self.timing.as_ref().map(|t| t.origin)
    }

    /// Every pass recorded since timing was turned on with events.
    pub fn events(&self) -> &[PassEvent] {
        self.timing
            .as_ref()
            .and_then(|t| t.events.as_deref())
            .unwrap_or(&[])
    }

    /// Seconds spent in each node's forward and backward passes since timing was turned
    /// on, in node order.
    pub fn timings(&self) -> Option<(&[f64], &[f64])> {
        self.timing
            .as_ref()
            .map(|t| (&t.forward[..], &t.backward[..]))
    }

    /// What each node is, for the current batch size.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let inputs: Vec<&[usize]> = node
                    .inputs
                    .iter()
                    .map(|&v| self.values[v].shape())
                    .collect();
                let output_shape = self.values[i + 1].shape().to_vec();
                let flops = node.layer.flops(&inputs);
                let needs_dx = node.inputs.iter().any(|&v| self.needs_grad[v]);
                NodeInfo {
                    label: node.label.clone(),
                    kind: node.layer.kind(),
                    flops,
                    backward_flops: flops.backward_params
                        + if needs_dx { flops.backward_data } else { 0.0 },
                    bytes: node.layer.bytes(&inputs, &output_shape),
                    output_shape,
                }
            })
            .collect()
    }

    /// Bytes held by the activation and gradient buffers.
    pub fn buffer_bytes(&self) -> usize {
        let values: usize = self.values.iter().map(|t| t.len()).sum();
        let grads: usize = self.grads.iter().map(|g| g.len()).sum();
        4 * (values + grads)
    }
}

/// Transposes an NCHW batch into `dst` (shaped alike) in NHWC order.
fn nchw_to_nhwc(src: &Tensor, dst: &mut Tensor) {
    let [_, c, h, w] = src.shape()[..] else {
        return;
    };
    let hw = h * w;
    for (s, d) in src
        .data()
        .chunks_exact(c * hw)
        .zip(dst.data_mut().chunks_exact_mut(c * hw))
    {
        for (p, pixel) in d.chunks_exact_mut(c).enumerate() {
            for (ch, v) in pixel.iter_mut().enumerate() {
                *v = s[ch * hw + p];
            }
        }
    }
}

/// A chain of layers, each reading the previous one's output.
pub struct Sequential {
    builder: GraphBuilder,
    last: NodeId,
    error: Option<Error>,
}

impl Sequential {
    pub fn new(sample_shape: &[usize]) -> Sequential {
        Sequential {
            builder: GraphBuilder::new(sample_shape),
            last: NodeId(0),
            error: None,
        }
    }

    /// Appends a layer (the first error is kept and returned by [`build`](Self::build)).
    pub fn push(mut self, name: &str, layer: impl Layer + 'static) -> Sequential {
        if self.error.is_none() {
            match self.builder.add(name, layer, &[self.last]) {
                Ok(id) => self.last = id,
                Err(e) => self.error = Some(e),
            }
        }
        self
    }

    /// The memory layout of the 4-D activations (see [`GraphBuilder::layout`]).
    pub fn layout(mut self, layout: Layout) -> Sequential {
        self.builder.layout(layout);
        self
    }

    pub fn build(self) -> Result<Graph> {
        match self.error {
            Some(e) => Err(e),
            None => self.builder.build(self.last),
        }
    }
}
