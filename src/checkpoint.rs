//! Checkpoints: a graph's parameters (PyTorch names and layouts), its persistent buffers
//! and the optimizer's state, in one safetensors file written atomically.
//!
//! Tensors: `{param}` (e.g. `conv1.weight`, OIHW), `{buffer}` (e.g.
//! `bn1.running_mean`), and `optimizer.{param}.{i}` for the optimizer's i-th state
//! buffer (momentum; Adam's exp_avg and exp_avg_sq; …). Metadata: `format`, `model`,
//! `epoch`, `optimizer_steps`. The file is written to a temporary name beside the target,
//! synced, then renamed over it, so a crash leaves the old checkpoint or the new one,
//! never half of one. Loading checks every name and shape before changing anything.

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::optim::Optimizer;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

const FORMAT: &str = "axonal-checkpoint-1";

/// What a checkpoint says about the run that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckpointInfo {
    pub model: String,
    /// Epochs completed.
    pub epoch: u64,
    pub optimizer_steps: u64,
}

fn bytes_of(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Saves the graph's parameters and buffers and, when given, the optimizer's state.
pub fn save(
    path: &Path,
    graph: &mut Graph,
    optimizer: Option<&mut Optimizer>,
    info: &CheckpointInfo,
) -> Result<()> {
    // (name, shape, little-endian bytes)
    let mut entries: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut names = Vec::new();
    graph.visit_params(&mut |p| {
        entries.push((p.name.clone(), p.shape.clone(), bytes_of(&p.value)));
        names.push(p.name.clone());
    });
    graph.visit_buffers(&mut |name, b| {
        entries.push((name.to_string(), vec![b.len()], bytes_of(b)));
    });
    let mut steps = 0;
    if let Some(opt) = optimizer {
        steps = opt.steps();
        for (name, buffers) in names.iter().zip(opt.state_mut().iter()) {
            for (i, b) in buffers.iter().enumerate() {
                entries.push((format!("optimizer.{name}.{i}"), vec![b.len()], bytes_of(b)));
            }
        }
    }
    let views = entries
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| Error::format(path, format!("cannot describe tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("model".to_string(), info.model.clone()),
        ("epoch".to_string(), info.epoch.to_string()),
        ("optimizer_steps".to_string(), steps.to_string()),
    ]);
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::format(path, format!("cannot serialize: {e}")))?;
    write_atomically(path, &bytes)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        Error::invalid(
            "checkpoint path",
            format!("{} names no file", path.display()),
        )
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Loads a checkpoint into `graph` (and `optimizer`, when given): every parameter and
/// buffer of the graph must be in the file with its shape, and the optimizer state must
/// match the optimizer's parameters. On any error nothing is changed.
pub fn load(
    path: &Path,
    graph: &mut Graph,
    optimizer: Option<&mut Optimizer>,
) -> Result<CheckpointInfo> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(Error::format(
            path,
            format!("not an axonal checkpoint (format {:?})", meta.get("format")),
        ));
    }
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::format(path, format!("corrupt safetensors file: {e}")))?;
    let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let view = file
            .tensor(name)
            .map_err(|_| Error::format(path, format!("no tensor {name}")))?;
        if view.dtype() != Dtype::F32 || view.shape() != shape {
            return Err(Error::format(
                path,
                format!(
                    "{name} is {:?} {:?}, expected F32 {shape:?}",
                    view.dtype(),
                    view.shape()
                ),
            ));
        }
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    let number = |key: &str| -> Result<u64> {
        meta.get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::format(path, format!("metadata {key} missing or not a number")))
    };
    let info = CheckpointInfo {
        model: meta.get("model").cloned().unwrap_or_default(),
        epoch: number("epoch")?,
        optimizer_steps: number("optimizer_steps")?,
    };
    // Read everything first, so that an error leaves the graph and optimizer untouched.
    let mut wanted: Vec<(String, Vec<usize>)> = Vec::new();
    graph.visit_params(&mut |p| wanted.push((p.name.clone(), p.shape.clone())));
    let params = wanted
        .iter()
        .map(|(name, shape)| tensor(name, shape))
        .collect::<Result<Vec<_>>>()?;
    let mut buffer_shapes: Vec<(String, usize)> = Vec::new();
    graph.visit_buffers(&mut |name, b| buffer_shapes.push((name.to_string(), b.len())));
    let buffers = buffer_shapes
        .iter()
        .map(|(name, len)| tensor(name, &[*len]))
        .collect::<Result<Vec<_>>>()?;
    let state = match &optimizer {
        Some(opt) if info.optimizer_steps > 0 => {
            let per_param = opt.state_buffers();
            let mut state = Vec::with_capacity(wanted.len());
            for (name, shape) in &wanted {
                let len: usize = shape.iter().product();
                let buffers = (0..per_param)
                    .map(|i| tensor(&format!("optimizer.{name}.{i}"), &[len]))
                    .collect::<Result<Vec<_>>>()?;
                state.push(buffers);
            }
            Some(state)
        }
        _ => None,
    };
    let mut params = params.into_iter();
    graph.visit_params(&mut |p| p.value = params.next().unwrap_or_default());
    let mut buffers = buffers.into_iter();
    graph.visit_buffers(&mut |_, b| *b = buffers.next().unwrap_or_default());
    if let Some(opt) = optimizer {
        *opt.state_mut() = state.unwrap_or_default();
        opt.set_steps(info.optimizer_steps);
    }
    Ok(info)
}
