//! Test support shared by every crate's tests: free ports, and real components (serf,
//! dockerd, etcd, ansible) started on loopback and stopped by PID.

/// Fails with a message naming the Debian package when `binary` is not on `PATH`; tests
/// that need a real component call this first so a missing install is never a skip.
pub fn require_binary(binary: &str, package: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{binary}` not found on PATH: install it with `apt-get install -y {package}`")
        })
}

/// A TCP port that was free on `ip` a moment ago.
pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
}

pub mod dockerd;
pub mod process;
pub mod serf;

pub use process::ChildGuard;
