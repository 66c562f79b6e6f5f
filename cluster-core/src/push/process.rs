//! Child processes of the process-based pushes ([`super::ansible`], [`super::command`]):
//! a private per-job directory, program lookup on `PATH`, and running one program in its
//! own process group with its output streamed line by line into the job log, stopped
//! (the whole group) on cancellation or timeout; the configured limits of a run and the
//! push errors its failures become.
//!
//! This module never builds a shell command line: programs get an argument vector, and
//! user data reaches them through files or stdin only.

use std::collections::VecDeque;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::LogSink;
use crate::error::{Error, Result};
use crate::job::{JobId, PushAction};

/// Lines of stderr kept for the message of a run that failed as a whole.
const STDERR_TAIL: usize = 8;

/// How long output readers may lag behind the exit of the program (a grandchild that
/// escaped the process group can hold a pipe open forever).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// A directory private to one push run (mode 0700), removed with its contents on drop.
#[derive(Debug)]
pub(crate) struct JobDir {
    path: PathBuf,
}

impl JobDir {
    /// Creates `<parent or $TMPDIR>/clusterm-<kind>-job<id>-<pid>-<n>`.
    pub fn create(parent: Option<&Path>, kind: &str, job: JobId) -> io::Result<Self> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let name = format!(
            "clusterm-{kind}-job{job}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = parent.join(name);
        // `create` (not `create_all`) fails on an existing path, so nobody can plant it.
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(JobDir { path })
    }

    /// The directory.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a new file readable by the owner only.
    pub fn write_private(&self, name: &str, contents: &[u8]) -> io::Result<PathBuf> {
        use std::io::Write;
        let path = self.path.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(contents)?;
        Ok(path)
    }

    /// Creates a private subdirectory.
    pub fn subdir(&self, name: &str) -> io::Result<PathBuf> {
        let path = self.path.join(name);
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(path)
    }
}

impl Drop for JobDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "push directory not removed");
        }
    }
}

/// Resolves `program` like `execvp` would: a path with a slash as is, a bare name on
/// `PATH`. `None` when no executable file is found.
pub(crate) fn find_program(program: &Path) -> Option<PathBuf> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.as_os_str().is_empty() {
        return None;
    }
    if program.components().count() > 1 || program.is_absolute() {
        return executable(program).then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

/// When a run must stop early.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Fires when the job is cancelled.
    pub cancel: CancellationToken,
    /// Longest the program may run.
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL to the process group.
    pub kill_grace: Duration,
}

/// The limits a process-based push is configured with, checked when it is built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    timeout: Option<Duration>,
    kill_grace: Duration,
}

impl Bounds {
    /// Checks the `timeout_secs` and `kill_grace_secs` settings of push `component`.
    pub fn from_secs(
        component: &str,
        timeout_secs: Option<f64>,
        kill_grace_secs: f64,
    ) -> Result<Self> {
        let secs = |field: &str, v: f64| {
            Duration::try_from_secs_f64(v).map_err(|e| Error::Config {
                component: component.into(),
                message: format!("{field}: {e}"),
            })
        };
        Ok(Bounds {
            timeout: timeout_secs.map(|t| secs("timeout_secs", t)).transpose()?,
            kill_grace: secs("kill_grace_secs", kill_grace_secs)?,
        })
    }

    /// The limits of one run: the configured timeout, else the job's own.
    pub fn limits(&self, cancel: &CancellationToken, job_timeout: Option<Duration>) -> Limits {
        Limits {
            cancel: cancel.clone(),
            timeout: self.timeout.or(job_timeout),
            kill_grace: self.kill_grace,
        }
    }
}

/// The error of a push that could not run `action` as a whole.
pub(crate) fn push_error(action: PushAction, message: impl Into<String>) -> Error {
    Error::Push {
        action: action.to_string(),
        message: message.into(),
    }
}

/// A push error for job `job` that failed `doing` something on the local machine.
pub(crate) fn io_error(action: PushAction, job: JobId, doing: &str, e: io::Error) -> Error {
    push_error(action, format!("job {job}: {doing}: {e}"))
}

/// How a run ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The program exited by itself.
    Exited(ExitStatus),
    /// The job was cancelled; the process group was killed.
    Cancelled,
    /// The timeout passed; the process group was killed.
    TimedOut(Duration),
}

/// The result of [`run`]: how it ended and the last lines of its stderr.
#[derive(Debug)]
pub(crate) struct Finished {
    /// How the program ended.
    pub ended: Ended,
    /// The newest stderr lines, oldest first.
    pub stderr_tail: Vec<String>,
}

/// Signals a process group; the guard SIGKILLs it on drop unless the run got to reap it,
/// so a push whose future is dropped (an abandoned job) leaves nothing behind.
struct Group {
    pgid: i32,
    armed: bool,
}

impl Group {
    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) has no memory-safety preconditions; the negative id names the
        // process group this run created with `process_group(0)`.
        unsafe {
            libc::kill(-self.pgid, signal);
        }
    }

    /// SIGTERM, then SIGKILL when the leader is still running after `grace`; reaps it.
    async fn stop(&mut self, child: &mut Child, grace: Duration) {
        self.signal(libc::SIGTERM);
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            self.signal(libc::SIGKILL);
            let _ = child.wait().await;
        }
        // Workers that ignored SIGTERM while the leader exited go too.
        self.signal(libc::SIGKILL);
        self.armed = false;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.armed {
            self.signal(libc::SIGKILL);
        }
    }
}

/// Runs `cmd` in a new process group, feeding `stdin` (or nothing) and streaming stdout
/// and stderr into `log` line by line as they come. Returns once the program has exited
/// or was stopped under `limits`; an `Err` means it could not be started.
pub(crate) async fn run(
    mut cmd: Command,
    stdin: Option<Vec<u8>>,
    log: &LogSink,
    limits: &Limits,
) -> io::Result<Finished> {
    cmd.process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let mut group = Group {
        pgid: child.id().map_or(0, |p| p as i32),
        armed: true,
    };
    if group.pgid <= 0 {
        // Only an already-reaped child has no id; there is nothing to signal.
        group.armed = false;
    }
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        tokio::spawn(async move {
            // A program that does not read its input closes the pipe; that is its choice.
            let _ = pipe.write_all(&data).await;
            let _ = pipe.shutdown().await;
        });
    }
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
    let readers = [
        child
            .stdout
            .take()
            .map(|out| tokio::spawn(forward(out, log.clone(), None))),
        child
            .stderr
            .take()
            .map(|err| tokio::spawn(forward(err, log.clone(), Some(tail.clone())))),
    ];

    let sleep = async {
        match limits.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let ended = tokio::select! {
        status = child.wait() => {
            let status = status?;
            // Stray workers of a finished program must not outlive the job.
            group.signal(libc::SIGKILL);
            group.armed = false;
            Ended::Exited(status)
        }
        _ = limits.cancel.cancelled() => {
            group.stop(&mut child, limits.kill_grace).await;
            Ended::Cancelled
        }
        _ = sleep => {
            group.stop(&mut child, limits.kill_grace).await;
            Ended::TimedOut(limits.timeout.unwrap_or_default())
        }
    };
    for reader in readers.into_iter().flatten() {
        let abort = reader.abort_handle();
        if tokio::time::timeout(DRAIN_LIMIT, reader).await.is_err() {
            abort.abort();
        }
    }
    let stderr_tail = tail
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
        .collect();
    Ok(Finished { ended, stderr_tail })
}

/// Copies lines from `pipe` into `log` (invalid UTF-8 replaced), keeping the newest few
/// in `tail` when given.
async fn forward(
    pipe: impl AsyncRead + Unpin,
    log: LogSink,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf).into_owned();
                if let Some(tail) = &tail {
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    if t.len() == STDERR_TAIL {
                        t.pop_front();
                    }
                    t.push_back(line.trim_end().to_owned());
                }
                log.line(line);
            }
        }
    }
}

/// Runs `cmd` for job `job` like [`run`]. A program that cannot be started, a cancelled
/// job and a timeout are push errors naming the job and the stopped `what`; otherwise
/// the exit status and the last lines of stderr.
pub(crate) async fn run_job(
    cmd: Command,
    stdin: Option<Vec<u8>>,
    log: &LogSink,
    limits: &Limits,
    action: PushAction,
    job: JobId,
    what: &str,
) -> Result<(ExitStatus, Vec<String>)> {
    let program = Path::new(cmd.as_std().get_program()).to_path_buf();
    let finished = run(cmd, stdin, log, limits).await.map_err(|e| {
        io_error(
            action,
            job,
            &format!("cannot start {}", program.display()),
            e,
        )
    })?;
    match finished.ended {
        Ended::Exited(status) => Ok((status, finished.stderr_tail)),
        Ended::Cancelled => Err(push_error(
            action,
            format!("job {job} cancelled; {what} stopped"),
        )),
        Ended::TimedOut(after) => Err(push_error(
            action,
            format!(
                "job {job} timed out after {}s; {what} stopped",
                after.as_secs_f64()
            ),
        )),
    }
}

/// A short description of an exit status for messages (`exit code 2`, `signal 9`).
pub(crate) fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        (None, None) => "unknown status".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_or_by_path() {
        assert!(find_program(Path::new("sh")).is_some());
        assert!(find_program(Path::new("/bin/sh")).is_some());
        assert!(find_program(Path::new("no-such-program-clusterm")).is_none());
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("not-executable");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        assert!(find_program(&plain).is_none());
        assert!(find_program(Path::new("")).is_none());
    }

    #[test]
    fn job_dirs_are_private_and_removed_on_drop() {
        let dir = JobDir::create(None, "test", JobId(7)).unwrap();
        let path = dir.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let f = dir.write_private("secret", b"x").unwrap();
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(dir.write_private("secret", b"y").is_err());
        drop(dir);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn output_is_streamed_and_stdin_is_fed() {
        let log = crate::push::JobLog::new(100, None);
        let sink = LogSink::new(log.clone());
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "cat; echo to-stderr >&2; exit 3"]);
        let limits = Limits {
            cancel: CancellationToken::new(),
            timeout: None,
            kill_grace: Duration::from_secs(1),
        };
        let done = run(cmd, Some(b"a\nb\n".to_vec()), &sink, &limits)
            .await
            .unwrap();
        match done.ended {
            Ended::Exited(s) => assert_eq!(describe(&s), "exit code 3"),
            other => panic!("unexpected end {other:?}"),
        }
        assert_eq!(done.stderr_tail, vec!["to-stderr".to_owned()]);
        let mut lines: Vec<_> = log.lines_after(0).into_iter().map(|l| l.text).collect();
        lines.sort();
        assert_eq!(lines, vec!["a", "b", "to-stderr"]);
    }
}
