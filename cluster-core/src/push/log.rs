//! Job logs: bounded in memory (a ring of the newest lines), optionally spilled whole to
//! a file, and followable by any number of readers while the job runs.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// One numbered line of a job log (numbers start at 1 and never repeat).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    /// Position in the log.
    pub n: u64,
    /// Text without the trailing newline.
    pub text: String,
}

#[derive(Debug)]
struct State {
    ring: VecDeque<String>,
    total: u64,
    finished: bool,
    spill: Option<BufWriter<File>>,
}

/// The log of one job.
#[derive(Debug)]
pub struct JobLog {
    capacity: usize,
    path: Option<PathBuf>,
    state: Mutex<State>,
    changed: Notify,
}

impl JobLog {
    /// A log keeping the newest `capacity` lines in memory, and every line in the file at
    /// `spill` when given (a file that cannot be created just means no spill).
    pub fn new(capacity: usize, spill: Option<PathBuf>) -> Arc<Self> {
        let file = spill.as_ref().and_then(|p| match File::create(p) {
            Ok(f) => Some(BufWriter::new(f)),
            Err(e) => {
                tracing::warn!(path = %p.display(), error = %e, "job log spill file unavailable");
                None
            }
        });
        let path = file.as_ref().and(spill);
        Arc::new(JobLog {
            capacity: capacity.max(1),
            path,
            state: Mutex::new(State {
                ring: VecDeque::new(),
                total: 0,
                finished: false,
                spill: file,
            }),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, text: String) {
        let mut st = self.lock();
        if st.finished {
            return;
        }
        if let Some(w) = st.spill.as_mut() {
            // A failing spill only loses the on-disk copy; the ring still has the tail.
            let _ = writeln!(w, "{text}");
        }
        if st.ring.len() == self.capacity {
            st.ring.pop_front();
        }
        st.ring.push_back(text);
        st.total += 1;
        drop(st);
        self.changed.notify_waiters();
    }

    /// Marks the log complete; followers stop after the last line.
    pub fn finish(&self) {
        let mut st = self.lock();
        st.finished = true;
        if let Some(w) = st.spill.as_mut() {
            let _ = w.flush();
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// Number of lines written so far.
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// Whether the job is done writing.
    pub fn is_finished(&self) -> bool {
        self.lock().finished
    }

    /// The spill file, when there is one.
    pub fn spill_path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// Lines numbered above `after` that are still in memory, oldest first.
    pub fn lines_after(&self, after: u64) -> Vec<LogLine> {
        let st = self.lock();
        let first = st.total - st.ring.len() as u64 + 1;
        let skip = after.saturating_sub(first - 1) as usize;
        st.ring
            .iter()
            .enumerate()
            .skip(skip)
            .map(|(i, t)| LogLine {
                n: first + i as u64,
                text: t.clone(),
            })
            .collect()
    }

    /// Waits until there are lines after `after` or the log is finished; returns the
    /// new lines (empty only when finished).
    pub async fn follow(&self, after: u64) -> Vec<LogLine> {
        loop {
            let notified = self.changed.notified();
            let lines = self.lines_after(after);
            if !lines.is_empty() || self.is_finished() {
                return lines;
            }
            notified.await;
        }
    }
}

/// Where a push writes its output; cheap to clone.
#[derive(Debug, Clone)]
pub struct LogSink(Arc<JobLog>);

impl LogSink {
    /// A sink writing into `log`.
    pub fn new(log: Arc<JobLog>) -> Self {
        LogSink(log)
    }

    /// A sink whose lines go nowhere but a small ring (tests, tools).
    pub fn detached() -> Self {
        LogSink(JobLog::new(64, None))
    }

    /// Appends one line (a trailing newline is removed).
    pub fn line(&self, text: impl Into<String>) {
        let mut text = text.into();
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        self.0.push(text);
    }

    /// The log this sink writes to.
    pub fn log(&self) -> &Arc<JobLog> {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_lines_and_spill_keeps_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.log");
        let log = JobLog::new(3, Some(path.clone()));
        let sink = LogSink::new(log.clone());
        for i in 1..=5 {
            sink.line(format!("line {i}\n"));
        }
        let tail: Vec<_> = log
            .lines_after(0)
            .into_iter()
            .map(|l| (l.n, l.text))
            .collect();
        assert_eq!(
            tail,
            vec![
                (3, "line 3".into()),
                (4, "line 4".into()),
                (5, "line 5".into())
            ]
        );
        assert_eq!(log.lines_after(4).len(), 1);
        assert!(log.lines_after(5).is_empty());
        log.finish();
        sink.line("after finish");
        assert_eq!(log.total(), 5);
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(text.lines().count(), 5);
        assert_eq!(text.lines().next(), Some("line 1"));
    }

    #[tokio::test]
    async fn followers_wake_on_new_lines_and_on_finish() {
        let log = JobLog::new(100, None);
        let sink = LogSink::new(log.clone());
        let reader = {
            let log = log.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut after = 0;
                loop {
                    let lines = log.follow(after).await;
                    if lines.is_empty() {
                        return seen;
                    }
                    after = lines.last().unwrap().n;
                    seen.extend(lines.into_iter().map(|l| l.text));
                }
            })
        };
        for i in 0..10 {
            sink.line(format!("{i}"));
            tokio::task::yield_now().await;
        }
        log.finish();
        let seen = reader.await.unwrap();
        assert_eq!(seen, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    }
}
