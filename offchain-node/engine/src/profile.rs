//! Where the time goes: named spans around the networks' blocks, timed after a
//! device sync, with the FLOPs the layers inside them did.
//!
//! Profiling is off unless a [`Session`] is active on the current thread; then
//! every [`span`] syncs the device before and after its body (so queued GPU
//! work is charged to the span that queued it) and the convolutions, linear
//! layers and attentions inside it add their FLOPs ([`count`]). Off, a span is
//! one thread-local read, and nothing syncs: generation keeps its overlap.

use burn::tensor::Device;
use std::cell::RefCell;
use std::time::Instant;

/// One finished span: its path (`unet/down.1/attn.0`), nesting depth,
/// wall time and the FLOPs counted inside it.
#[derive(Debug, Clone)]
pub struct Record {
    pub path: String,
    pub depth: usize,
    pub seconds: f64,
    pub flops: f64,
}

struct Active {
    device: Device,
    stack: Vec<String>,
    flops: f64,
    records: Vec<Record>,
}

thread_local! {
    static ACTIVE: RefCell<Option<Active>> = const { RefCell::new(None) };
}

/// Profiling on the current thread while it lives; [`Session::finish`] returns the spans.
pub struct Session {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Session {
    /// Starts profiling work on `device`. Panics if a session is already active on this thread.
    pub fn start(device: &Device) -> Self {
        ACTIVE.with(|a| {
            let mut a = a.borrow_mut();
            assert!(a.is_none(), "a profiling session is already active");
            *a = Some(Active {
                device: device.clone(),
                stack: Vec::new(),
                flops: 0.0,
                records: Vec::new(),
            });
        });
        Session {
            _not_send: std::marker::PhantomData,
        }
    }

    /// The spans in the order they first started (parents before their children).
    pub fn finish(self) -> Vec<Record> {
        take().map(|a| a.records).unwrap_or_default()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        take();
    }
}

fn take() -> Option<Active> {
    ACTIVE.with(|a| a.borrow_mut().take())
}

/// Whether a session is active on this thread.
pub fn active() -> bool {
    ACTIVE.with(|a| a.borrow().is_some())
}

/// Adds `flops` to every open span (a no-op when profiling is off).
pub fn count(flops: f64) {
    ACTIVE.with(|a| {
        if let Some(a) = a.borrow_mut().as_mut() {
            a.flops += flops;
        }
    });
}

fn sync() {
    let device = ACTIVE.with(|a| a.borrow().as_ref().map(|a| a.device.clone()));
    if let Some(d) = device {
        // A failed sync surfaces again at the next read of a tensor; timing goes on.
        let _ = d.sync();
    }
}

/// Runs `f` as the span `name` (nested under any open span). Repeated names
/// under one parent accumulate into one record.
pub fn span<T>(name: &str, f: impl FnOnce() -> T) -> T {
    if !active() {
        return f();
    }
    sync();
    // A span's record is made when it first opens, so parents precede their
    // children and siblings keep the order they ran in.
    let (index, flops0) = ACTIVE.with(|a| {
        let mut a = a.borrow_mut();
        let a = a.as_mut().expect("active");
        a.stack.push(name.to_owned());
        let path = a.stack.join("/");
        let index = match a.records.iter().position(|r| r.path == path) {
            Some(i) => i,
            None => {
                a.records.push(Record {
                    path,
                    depth: a.stack.len() - 1,
                    seconds: 0.0,
                    flops: 0.0,
                });
                a.records.len() - 1
            }
        };
        (index, a.flops)
    });
    let t0 = Instant::now();
    let out = f();
    sync();
    let seconds = t0.elapsed().as_secs_f64();
    ACTIVE.with(|a| {
        let mut a = a.borrow_mut();
        let a = a.as_mut().expect("active");
        a.stack.pop();
        let flops = a.flops - flops0;
        let r = &mut a.records[index];
        r.seconds += seconds;
        r.flops += flops;
    });
    out
}

/// FLOPs of a 2D convolution producing `[b, c_out, h_out, w_out]` with a `k`×`k` kernel.
pub fn conv_flops(
    b: usize,
    c_in: usize,
    c_out: usize,
    k: usize,
    h_out: usize,
    w_out: usize,
) -> f64 {
    2.0 * (b * c_in * c_out * k * k * h_out * w_out) as f64
}

/// FLOPs of `rows` rows through a `d_in`→`d_out` linear layer.
pub fn linear_flops(rows: usize, d_in: usize, d_out: usize) -> f64 {
    2.0 * (rows * d_in * d_out) as f64
}

/// FLOPs of attention's two matmuls (scores and mix) over `b·heads` heads.
pub fn attention_flops(bh: usize, s: usize, t: usize, d: usize) -> f64 {
    4.0 * (bh * s * t * d) as f64
}

/// The records as a table: milliseconds, achieved TFLOP/s and share of the
/// `total` seconds, indented by depth.
pub fn table(records: &[Record], total: f64) -> String {
    let mut out = format!(
        "{:<44} {:>10} {:>9} {:>7}\n",
        "span", "ms", "TFLOP/s", "share"
    );
    for r in records {
        let name = r.path.rsplit('/').next().unwrap_or(&r.path);
        let label = format!("{}{}", "  ".repeat(r.depth), name);
        let tflops = if r.seconds > 0.0 {
            r.flops / r.seconds / 1e12
        } else {
            0.0
        };
        out.push_str(&format!(
            "{:<44} {:>10.2} {:>9.3} {:>6.1}%\n",
            label,
            r.seconds * 1e3,
            tflops,
            100.0 * r.seconds / total.max(f64::MIN_POSITIVE)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_nest_accumulate_and_count_flops() {
        let device = Device::flex();
        let session = Session::start(&device);
        span("unet", || {
            for _ in 0..2 {
                span("down.0", || count(10.0));
            }
            span("mid", || {
                count(5.0);
                span("attn", || count(1.0));
            });
        });
        count(100.0); // outside every span: charged to none
        let r = session.finish();
        let paths: Vec<_> = r
            .iter()
            .map(|r| (r.path.as_str(), r.depth, r.flops))
            .collect();
        assert_eq!(
            paths,
            vec![
                ("unet", 0, 26.0),
                ("unet/down.0", 1, 20.0),
                ("unet/mid", 1, 6.0),
                ("unet/mid/attn", 2, 1.0),
            ]
        );
        assert!(!active());
        // Off: spans run their bodies and record nothing.
        assert_eq!(span("x", || 7), 7);
    }
}
