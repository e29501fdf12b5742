//! Collecting a child's output lines as they arrive, and waiting on them.

use crate::wait;
use parking_lot::{Mutex, MutexGuard};
use std::{
    sync::{
        atomic::{AtomicBool, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    sync::Notify,
    task::JoinHandle,
};

/// All lines read so far from one stream, shared between the reader task and the test.
#[derive(Default)]
pub(crate) struct Lines {
    lines: Mutex<Vec<String>>,
    eof: AtomicBool,
    changed: Notify,
}

impl Lines {
    /// Starts a task reading `stream` line by line into a new buffer.
    pub(crate) fn collect<R>(stream: R) -> (Arc<Self>, JoinHandle<()>)
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let lines = Arc::new(Self::default());
        let sink = lines.clone();
        let task = tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().push(line);
                sink.changed.notify_waiters();
            }
            sink.eof.store(true, SeqCst);
            sink.changed.notify_waiters();
        });
        (lines, task)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<String>> {
        self.lines.lock()
    }

    pub(crate) fn snapshot(&self) -> Vec<String> {
        self.lock().clone()
    }

    pub(crate) fn at_eof(&self) -> bool {
        self.eof.load(SeqCst)
    }

    /// Waits until `done(lines so far)` holds or the stream ends; returns whether it held.
    pub(crate) async fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[String]) -> bool,
    ) -> bool {
        let mut held = false;
        wait::until(&self.changed, timeout, || {
            held = done(&self.lock());
            held || self.at_eof()
        })
        .await;
        held
    }

    /// Waits for the first line matching `matches`; `None` on timeout or end of stream.
    pub(crate) async fn wait_for_line(
        &self,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let mut found = None;
        self.wait_until(timeout, |lines| {
            found = lines.iter().find(|l| matches(l)).cloned();
            found.is_some()
        })
        .await;
        found
    }
}

/// The last `n` lines of `lines`, joined for a panic message.
pub(crate) fn tail(lines: &[String], n: usize) -> String {
    let skip = lines.len().saturating_sub(n);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("  ... {skip} earlier lines\n"));
    }
    for line in &lines[skip..] {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}
