//! The engine's one error type: every variant names the file or tensor at fault.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: not a safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },
    #[error("tensor `{name}` is missing from the {component} weights")]
    MissingTensor { component: String, name: String },
    #[error(
        "tensor `{name}` in the {component} weights has shape {found:?}, expected {expected:?}"
    )]
    Shape {
        component: String,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor `{name}` in the {component} weights has unsupported dtype {dtype}")]
    DType {
        component: String,
        name: String,
        dtype: String,
    },
    #[error("{component} weights hold {count} tensor(s) the model does not use, e.g. `{first}`")]
    Unused {
        component: String,
        count: usize,
        first: String,
    },
    #[error("tensor `{name}` is in both {first} and {second}")]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("no weights for {component} in {dir} (looked for {looked_for})")]
    NoWeights {
        component: String,
        dir: PathBuf,
        looked_for: String,
    },
    #[error("model not found: {0}")]
    ModelNotFound(String),
    #[error("invalid request: {0}")]
    Request(String),
    #[error("device: {0}")]
    Device(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}
