//! The log tail the status server shows on `GET /logs`: a `tracing` layer
//! that formats each event as the text log does (no colours) into a bounded
//! ring buffer, installed by [`init_logging`] next to the stderr layer.

use crate::config::Config;
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, OnceLock};
use tracing::Subscriber;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Lines the buffer keeps.
pub const CAPACITY: usize = 500;
/// Lines `GET /logs` returns unless asked for fewer.
pub const DEFAULT_LINES: usize = 200;
/// A longer line is cut here (a log line may quote a whole error body).
const MAX_LINE: usize = 4096;

/// The last [`CAPACITY`] log lines. Cheap to clone.
#[derive(Clone)]
pub struct LogBuffer {
    lines: Arc<Mutex<VecDeque<String>>>,
    capacity: usize,
}

impl Default for LogBuffer {
    fn default() -> Self {
        LogBuffer::new(CAPACITY)
    }
}

impl LogBuffer {
    pub fn new(capacity: usize) -> LogBuffer {
        LogBuffer {
            lines: Arc::new(Mutex::new(VecDeque::with_capacity(capacity.min(1024)))),
            capacity: capacity.max(1),
        }
    }

    /// Appends one line, dropping the oldest past the capacity.
    pub fn push(&self, line: &str) {
        let mut line = line.trim_end().to_owned();
        if line.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        while lines.len() >= self.capacity {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let skip = lines.len().saturating_sub(n);
        lines.iter().skip(skip).cloned().collect()
    }
}

/// The process's buffer: the one [`init_logging`] feeds and the daemon's
/// status server reads.
pub fn global() -> &'static LogBuffer {
    static GLOBAL: OnceLock<LogBuffer> = OnceLock::new();
    GLOBAL.get_or_init(LogBuffer::default)
}

/// Collects what the fmt layer writes for one event; pushed when dropped.
pub struct LineWriter {
    buffer: LogBuffer,
    bytes: Vec<u8>,
}

impl std::io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.bytes);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.buffer.push(line);
        }
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            buffer: self.clone(),
            bytes: Vec::new(),
        }
    }
}

/// Span fields formatted for the buffer. A type of its own, so that spans
/// keep a copy without colours apart from the stderr layer's (fmt layers
/// sharing a field formatter type share its cached span fields).
#[derive(Default)]
pub struct PlainFields(DefaultFields);

impl<'w> FormatFields<'w> for PlainFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        self.0.format_fields(writer, fields)
    }
}

/// The layer that writes every event it sees into `buffer`, as plain text.
pub fn layer<S>(buffer: LogBuffer) -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .fmt_fields(PlainFields::default())
        .with_writer(buffer)
}

/// The GPU stack's own INFO lines (CubeCL's autotune prints one per kernel
/// it tries, ~70 on a first task; wgpu and naga describe the adapter) are
/// noise to a node runner: kept at WARN unless `RUST_LOG` asks for them.
const QUIET_DEPENDENCIES: &str = "cubecl=warn,cubecl_runtime=warn,cubecl_wgpu=warn,\
    burn_cubecl=warn,wgpu_core=warn,wgpu_hal=warn,naga=warn";

/// Sets up logging as configured (`RUST_LOG` wins over `log.level`): text
/// or JSON lines on stderr, and the same events as text into [`global`]
/// for the status server's `/logs`.
pub fn init_logging(config: &Config) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{},{QUIET_DEPENDENCIES}", config.log.level)))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{QUIET_DEPENDENCIES}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let tail = global().clone();
    if config.log.json {
        builder.json().finish().with(layer(tail)).init();
    } else {
        builder.finish().with(layer(tail)).init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn keeps_the_last_lines_of_what_was_logged() {
        let buffer = LogBuffer::new(3);
        let subscriber = tracing_subscriber::registry().with(layer(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..5 {
                tracing::info!(task = i, "line {i}");
            }
        });
        let tail = buffer.tail(10);
        assert_eq!(tail.len(), 3, "{tail:?}");
        assert!(
            tail[0].contains("line 2") && tail[0].contains("task=2"),
            "{tail:?}"
        );
        assert!(
            tail[2].contains("INFO") && tail[2].contains("line 4"),
            "{tail:?}"
        );
        assert!(!tail[2].contains('\u{1b}'), "no colours: {tail:?}");
        assert_eq!(buffer.tail(1), tail[2..].to_vec());
        buffer.push(&"x".repeat(MAX_LINE + 10));
        assert!(buffer.tail(1)[0].len() <= MAX_LINE + 3);
    }
}
