//! Reading PyTorch's golden vectors (`shared/golden/*.safetensors`) and comparing to them.

use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::PathBuf;

/// Where the golden files are: `AXONAL_GOLDEN_DIR`, else `shared/golden` beside the checkout.
pub fn golden_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AXONAL_GOLDEN_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/golden")
}

/// The file names (without directory) of every golden file whose name starts with `prefix`,
/// sorted. Panics when there is none, so that a test can never pass by finding nothing.
pub fn golden_files(prefix: &str) -> Vec<String> {
    let dir = golden_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "cannot read the golden directory {} ({e}); set AXONAL_GOLDEN_DIR to shared/golden",
            dir.display()
        )
    });
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".safetensors"))
        .collect();
    names.sort();
    assert!(
        !names.is_empty(),
        "no golden file {prefix}* in {}",
        dir.display()
    );
    names
}

/// One golden file: its f32 tensors (with shapes) and its metadata (JSON strings).
pub struct Golden {
    pub name: String,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    meta: HashMap<String, String>,
}

impl Golden {
    /// Loads `name` from [`golden_dir`]; panics with the file name on any problem.
    pub fn load(name: &str) -> Golden {
        let path = golden_dir().join(name);
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let (_, metadata) = SafeTensors::read_metadata(&bytes)
            .unwrap_or_else(|e| panic!("{name}: bad safetensors header: {e}"));
        let meta = metadata.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(&bytes)
            .unwrap_or_else(|e| panic!("{name}: bad safetensors file: {e}"));
        let mut tensors = HashMap::new();
        for (key, view) in st.tensors() {
            assert_eq!(view.dtype(), Dtype::F32, "{name}: tensor {key} is not f32");
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.insert(key, (view.shape().to_vec(), values));
        }
        Golden {
            name: name.to_string(),
            tensors,
            meta,
        }
    }

    /// Whether the file holds tensor `key`.
    pub fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// The values of tensor `key`.
    pub fn tensor(&self, key: &str) -> &[f32] {
        &self.entry(key).1
    }

    /// The shape of tensor `key`.
    pub fn shape(&self, key: &str) -> &[usize] {
        &self.entry(key).0
    }

    /// Every tensor name, sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        keys.sort();
        keys
    }

    fn entry(&self, key: &str) -> &(Vec<usize>, Vec<f32>) {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("{}: no tensor {key}", self.name))
    }

    /// Metadata `key` parsed as JSON (`None` when absent). A value that is not JSON, such
    /// as the plain `op` names, comes back as a JSON string.
    pub fn meta(&self, key: &str) -> Option<serde_json::Value> {
        let raw = self.meta.get(key)?;
        Some(serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.clone())))
    }

    /// Metadata `key` as a string (JSON strings unquoted).
    pub fn meta_str(&self, key: &str) -> String {
        match self.required(key) {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }
    }

    /// Metadata `key` as a number.
    pub fn meta_f64(&self, key: &str) -> f64 {
        self.required(key)
            .as_f64()
            .unwrap_or_else(|| panic!("{}: metadata {key} is not a number", self.name))
    }

    /// Metadata `key` as a boolean.
    pub fn meta_bool(&self, key: &str) -> bool {
        self.required(key)
            .as_bool()
            .unwrap_or_else(|| panic!("{}: metadata {key} is not a boolean", self.name))
    }

    /// Metadata `key` as a pair such as `[2, 2]`.
    pub fn meta_pair(&self, key: &str) -> [usize; 2] {
        let value = self.required(key);
        let v: Vec<usize> = value
            .as_array()
            .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect())
            .unwrap_or_else(|| panic!("{}: metadata {key} = {value} is not a pair", self.name));
        assert_eq!(v.len(), 2, "{}: metadata {key} is not a pair", self.name);
        [v[0], v[1]]
    }

    fn required(&self, key: &str) -> serde_json::Value {
        self.meta(key)
            .unwrap_or_else(|| panic!("{}: no metadata {key}", self.name))
    }
}

/// The golden tolerance: relative error ≤ 1e-4 or absolute error ≤ 1e-5 per element.
pub const REL_TOL: f64 = 1e-4;
pub const ABS_TOL: f64 = 1e-5;

/// Asserts that `got` matches `expected` element by element within `rel` or `abs`,
/// naming the case and the first offending elements.
pub fn assert_close_tol(what: &str, got: &[f32], expected: &[f32], rel: f64, abs: f64) {
    assert_eq!(
        got.len(),
        expected.len(),
        "{what}: {} values, expected {}",
        got.len(),
        expected.len()
    );
    let mut bad = Vec::new();
    for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
        let (g, e) = (f64::from(g), f64::from(e));
        let diff = (g - e).abs();
        if !(diff <= abs || diff <= rel * e.abs()) {
            bad.push(format!("[{i}] got {g:e}, expected {e:e}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{what}: {} of {} values off (rel {rel:e}, abs {abs:e}); first: {}",
        bad.len(),
        got.len(),
        bad.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
    );
}

/// [`assert_close_tol`] with the golden tolerance.
pub fn assert_close(what: &str, got: &[f32], expected: &[f32]) {
    assert_close_tol(what, got, expected, REL_TOL, ABS_TOL);
}
