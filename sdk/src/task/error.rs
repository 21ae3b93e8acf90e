//! The one error type of the task schema: what is wrong, and where, as a JSON
//! path such as `task_config.steps`.

/// Why a task's arguments were refused.
///
/// Every variant carries the JSON path of the offending value (`""` for the
/// document itself), so an app can point its user at the field.
///
/// ```
/// use hydrogen_sdk::task::TaskArgs;
///
/// let err = TaskArgs::from_json(r#"{"base_model": "runwayml/stable-diffusion-v1-5",
///     "prompt": "a cat", "task_config": {"steps": 0}}"#).unwrap_err();
/// assert_eq!(err.path(), "task_config.steps");
/// assert_eq!(err.to_string(), "task_config.steps: must be between 1 and 100, got 0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskArgsError {
    /// The text is not JSON, or not the task's shape: a value of the wrong
    /// type, a required field missing, or a field the format does not have
    /// (the message names it: ``unknown field `foo` ``).
    #[error("{}{message}", at(.path))]
    Malformed {
        /// Where the parser stopped.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value of the right type outside its bounds (`steps` 0, an empty
    /// prompt, a width that is not a multiple of 8).
    #[error("{}{message}", at(.path))]
    Invalid {
        /// The value's path.
        path: String,
        /// The rule it breaks and the value it had.
        message: String,
    },
    /// A field or value the reference network accepts that Hydrogen's
    /// engine does not run yet (`controlnet`, `refiner`, SDXL, ...).
    #[error("`{path}` {message}")]
    Unsupported {
        /// The field's path.
        path: String,
        /// `is not supported yet`, with the value when that is the reason.
        message: String,
    },
}

impl TaskArgsError {
    /// The JSON path of the value the error is about (`""` for the document).
    pub fn path(&self) -> &str {
        match self {
            Self::Malformed { path, .. }
            | Self::Invalid { path, .. }
            | Self::Unsupported { path, .. } => path,
        }
    }

    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn unsupported(path: impl Into<String>) -> Self {
        Self::Unsupported {
            path: path.into(),
            message: "is not supported yet".into(),
        }
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// `Ok` when `value` lies in `lo..=hi`, else an [`TaskArgsError::Invalid`] at `path`.
pub(crate) fn check_range<T>(path: &str, value: T, lo: T, hi: T) -> Result<(), TaskArgsError>
where
    T: PartialOrd + std::fmt::Display,
{
    if lo <= value && value <= hi {
        Ok(())
    } else {
        Err(TaskArgsError::invalid(
            path,
            format!("must be between {lo} and {hi}, got {value}"),
        ))
    }
}

/// `Ok` when `value` is not empty.
pub(crate) fn check_non_empty(path: &str, value: &str) -> Result<(), TaskArgsError> {
    if value.is_empty() {
        Err(TaskArgsError::invalid(path, "must not be empty"))
    } else {
        Ok(())
    }
}

/// A percent field of the reference format: an integer 1..=100 meaning a
/// fraction (`weight: 70` is 0.7).
pub(crate) fn check_percent(path: &str, value: u32) -> Result<(), TaskArgsError> {
    check_range(path, value, 1, 100)
}
