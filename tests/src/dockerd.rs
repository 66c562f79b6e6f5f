//! Real `dockerd` daemons for tests. Each has its own data root, exec root (so its own
//! containerd), pid file and unix socket under one temporary directory, and runs with
//! `--iptables=false --bridge=none --storage-driver=vfs` so several can share the host's
//! network namespace. The socket of the daemon for address `A` is `<dir>/A.sock`, so
//! one endpoint template (`unix://<dir>/{addr}.sock`) reaches them all.
//!
//! Cleanup is owned here: dropping a [`DockerdSet`] kills every daemon by PID (its
//! process group, then the containerd it started, which runs in a group of its own) and
//! detaches the namespace mounts the daemons left under the directory before it is
//! removed.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::{ChildGuard, require_binary};

/// How long a daemon may take to answer its first ping on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// One `dockerd` owned by a test.
#[derive(Debug)]
pub struct Dockerd {
    // Dropped first, so the daemon is gone before anything else is cleaned.
    guard: Option<ChildGuard>,
    addr: String,
    root: PathBuf,
    socket: PathBuf,
    extra: Vec<String>,
}

impl Dockerd {
    fn new(dir: &Path, addr: &str, extra: Vec<String>) -> Dockerd {
        let root = dir.join(addr);
        for sub in ["data", "exec"] {
            std::fs::create_dir_all(root.join(sub))
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", root.join(sub).display()));
        }
        Dockerd {
            guard: None,
            addr: addr.to_owned(),
            socket: dir.join(format!("{addr}.sock")),
            root,
            extra,
        }
    }

    /// The address this daemon stands for (the node's management address).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `unix://` endpoint of its API socket.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The daemon's log so far (for assertion messages).
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.root.join("dockerd.log")).unwrap_or_default()
    }

    /// Whether the daemon process is running.
    pub fn is_running(&mut self) -> bool {
        self.guard.as_mut().is_some_and(ChildGuard::is_running)
    }

    fn spawn(&mut self) {
        assert!(
            self.guard.is_none(),
            "dockerd for {} already running",
            self.addr
        );
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = Command::new("dockerd");
        cmd.arg("--data-root")
            .arg(self.root.join("data"))
            .arg("--exec-root")
            .arg(self.root.join("exec"))
            .arg("--pidfile")
            .arg(self.root.join("dockerd.pid"))
            .arg("-H")
            .arg(self.endpoint())
            .args(["--iptables=false", "--ip-masq=false", "--bridge=none"])
            .args(["--storage-driver=vfs", "--log-level=info"])
            .args(&self.extra);
        // Should the test process itself be killed, the kernel takes the daemon down too.
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let log = self.root.join("dockerd.log");
        let guard = ChildGuard::spawn(&format!("dockerd-{}", self.addr), cmd, &log)
            .unwrap_or_else(|e| panic!("cannot start dockerd for {}: {e}", self.addr));
        self.guard = Some(guard);
    }

    /// Waits until the daemon answers `GET /_ping` on its socket.
    fn wait_ready(&mut self) {
        let start = Instant::now();
        while !ping(&self.socket) {
            if !self.is_running() {
                panic!("dockerd for {} exited:\n{}", self.addr, self.output());
            }
            if start.elapsed() > START_TIMEOUT {
                panic!(
                    "dockerd for {} did not answer within {START_TIMEOUT:?}:\n{}",
                    self.addr,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the daemon again after [`Dockerd::stop`] and waits until it answers.
    pub fn start(&mut self) {
        self.spawn();
        self.wait_ready();
    }

    /// Stops the daemon gracefully (SIGTERM; SIGKILL after `grace`), then its containerd.
    pub fn stop(&mut self, grace: Duration) {
        let containerd = self.containerd_pid();
        if let Some(mut g) = self.guard.take() {
            g.stop(grace);
        }
        if let Some(pid) = containerd {
            self.kill_containerd(pid);
        }
    }

    /// `kill -9` the daemon and its containerd.
    pub fn kill(&mut self) {
        let containerd = self.containerd_pid();
        if let Some(mut g) = self.guard.take() {
            g.kill();
        }
        if let Some(pid) = containerd {
            self.kill_containerd(pid);
        }
    }

    /// Kills the daemon and deletes all its state, as if its host were rebuilt; call
    /// [`Dockerd::start`] to bring up a blank engine at the same address.
    pub fn wipe(&mut self) {
        self.kill();
        unmount_below(&self.root);
        for sub in ["data", "exec"] {
            let dir = self.root.join(sub);
            std::fs::remove_dir_all(&dir)
                .unwrap_or_else(|e| panic!("cannot wipe {}: {e}", dir.display()));
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
    }

    /// The containerd this daemon started, from the pid file in its exec root.
    fn containerd_pid(&self) -> Option<i32> {
        let file = self.root.join("exec/containerd/containerd.pid");
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// Kills containerd `pid` if it is still the one this daemon started (its command
    /// line names our exec root), so a recycled PID is never hit.
    fn kill_containerd(&self, pid: i32) {
        let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(&*self.root.to_string_lossy()))
            .unwrap_or(false);
        if ours {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            let start = Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists()
                && start.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Runs the `docker` CLI against this daemon with `args` (never through a shell).
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(self.endpoint())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run docker for {}: {e}", self.addr))
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a Docker API answers `OK` to `GET /_ping` on `socket`.
fn ping(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    s.read_to_string(&mut buf).is_ok() && buf.starts_with("HTTP/1.") && buf.ends_with("OK")
}

/// Several daemons under one temporary directory, one per address.
#[derive(Debug)]
pub struct DockerdSet {
    // Dropped before `dir`: daemons first, then the directory (after unmounting).
    daemons: Vec<Dockerd>,
    dir: tempfile::TempDir,
}

impl DockerdSet {
    /// Starts one daemon per address (all at once) and waits until each answers.
    pub fn start(addrs: &[&str]) -> DockerdSet {
        DockerdSet::start_with(addrs, |_, _| Vec::new())
    }

    /// Like [`DockerdSet::start`], with extra daemon arguments per address, computed from
    /// the set's directory and the address (e.g. a TLS listener).
    pub fn start_with(addrs: &[&str], extra: impl Fn(&Path, &str) -> Vec<String>) -> DockerdSet {
        require_binary("dockerd", "docker.io");
        require_binary("containerd", "containerd");
        require_binary("docker", "docker.io");
        // Short path: unix socket paths are limited to 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("dkd")
            .tempdir_in("/tmp")
            .expect("temp dir for dockerd");
        let mut set = DockerdSet {
            daemons: addrs
                .iter()
                .map(|a| Dockerd::new(dir.path(), a, extra(dir.path(), a)))
                .collect(),
            dir,
        };
        set.daemons.iter_mut().for_each(Dockerd::spawn);
        set.daemons.iter_mut().for_each(Dockerd::wait_ready);
        set
    }

    /// The directory holding every daemon's state and socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// An endpoint template reaching each daemon by its address: `unix://<dir>/{addr}.sock`.
    pub fn endpoint_template(&self) -> String {
        format!("unix://{}/{{addr}}.sock", self.dir.path().display())
    }

    /// The daemons, in the order of their addresses.
    pub fn daemons(&self) -> &[Dockerd] {
        &self.daemons
    }

    /// Daemon `i`, mutably (to stop or restart it).
    pub fn daemon_mut(&mut self, i: usize) -> &mut Dockerd {
        &mut self.daemons[i]
    }
}

impl Drop for DockerdSet {
    fn drop(&mut self) {
        self.daemons.iter_mut().for_each(Dockerd::kill);
        unmount_below(self.dir.path());
    }
}

/// Lazily detaches every mount under `dir` (network namespaces a killed daemon left
/// behind), deepest first, so the directory can be removed.
fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let Ok(c) = std::ffi::CString::new(p.clone()) else {
            continue;
        };
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        if rc != 0 {
            tracing::warn!(path = %p, error = %std::io::Error::last_os_error(), "umount failed");
        }
    }
}

/// Decodes the octal escapes (`\040` for a space) of a mountinfo path.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = |c: &u8| (b'0'..=b'7').contains(c);
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(octal) {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// PEM files for an engine listening with `--tlsverify` and a client it trusts: a fresh
/// CA, a server certificate for some IP addresses and a client certificate.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA certificate.
    pub ca: PathBuf,
    /// Server certificate (subject alternative names: the IPs).
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// Client certificate.
    pub client_cert: PathBuf,
    /// Client key.
    pub client_key: PathBuf,
}

impl TlsFiles {
    /// Generates the files under `dir` with the `openssl` CLI (P-256 keys, valid 2 days).
    pub fn generate(dir: &Path, ips: &[&str]) -> TlsFiles {
        require_binary("openssl", "openssl");
        std::fs::create_dir_all(dir).expect("tls dir");
        let p = |f: &str| dir.join(f);
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=clusterm test CA",
            ],
            &[("-keyout", p("ca-key.pem")), ("-out", p("ca.pem"))],
        );
        for (who, ext) in [
            (
                "server",
                format!(
                    "subjectAltName={}\nextendedKeyUsage=serverAuth\n",
                    ips.iter()
                        .map(|ip| format!("IP:{ip}"))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ),
            ("client", "extendedKeyUsage=clientAuth\n".to_owned()),
        ] {
            openssl(
                &[
                    "req",
                    "-new",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-subj",
                    &format!("/CN={who}"),
                ],
                &[
                    ("-keyout", p(&format!("{who}-key.pem"))),
                    ("-out", p(&format!("{who}.csr"))),
                ],
            );
            std::fs::write(p(&format!("{who}.ext")), ext).expect("extension file");
            openssl(
                &["x509", "-req", "-days", "2", "-CAcreateserial"],
                &[
                    ("-in", p(&format!("{who}.csr"))),
                    ("-CA", p("ca.pem")),
                    ("-CAkey", p("ca-key.pem")),
                    ("-extfile", p(&format!("{who}.ext"))),
                    ("-out", p(&format!("{who}.pem"))),
                ],
            );
        }
        TlsFiles {
            ca: p("ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server-key.pem"),
            client_cert: p("client.pem"),
            client_key: p("client-key.pem"),
        }
    }

    /// `dockerd` arguments that serve the API on `tcp://ip:port` with client verification.
    pub fn dockerd_args(&self, ip: &str, port: u16) -> Vec<String> {
        let s = |p: &Path| p.display().to_string();
        vec![
            "--tlsverify".into(),
            format!("--tlscacert={}", s(&self.ca)),
            format!("--tlscert={}", s(&self.server_cert)),
            format!("--tlskey={}", s(&self.server_key)),
            "-H".into(),
            format!("tcp://{ip}:{port}"),
        ]
    }
}

/// Runs `openssl` with `args` then the `(flag, path)` pairs, panicking with its output
/// when it fails.
fn openssl(args: &[&str], paths: &[(&str, PathBuf)]) {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    for (flag, path) in paths {
        cmd.arg(flag).arg(path);
    }
    let out = cmd.output().expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
