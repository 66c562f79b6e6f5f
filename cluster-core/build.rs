//! Records the compiler version so dynamic plugins built with another rustc are
//! refused before any of their Rust-ABI code runs.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("-vV")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default();
    assert!(!version.is_empty(), "cannot read the version of {rustc}");
    println!("cargo:rustc-env=CLUSTERM_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
