//! Dynamic plugins: a `cdylib` that exports one [`PluginDeclaration`] named
//! `CLUSTERM_PLUGIN` (use [`export_plugin!`](crate::export_plugin)). Rust has no stable
//! ABI, so the declaration is `#[repr(C)]` and carries the ABI version, the rustc
//! version and the cluster-core version the plugin was built with; all three must equal
//! the host's before the plugin's Rust code is called. A mismatch is an error, never a
//! call into code of unknown layout.

use std::ffi::{CStr, c_char};
use std::path::Path;
use std::sync::RwLock;

use super::{BackendFactory, DiscoveryFactory, PushFactory, StoreFactory};
use crate::error::{Error, Result};

/// Layout version of [`PluginDeclaration`], [`Registrar`] and the component traits'
/// vtables; raised whenever any of them changes (2: `ClusterBackend::restore`).
pub const ABI_VERSION: u32 = 2;
/// The rustc that built this cluster-core (`rustc -vV` first line), NUL-terminated.
pub const RUSTC_VERSION: &str = concat!(env!("CLUSTERM_RUSTC_VERSION"), "\0");
/// This cluster-core's version, NUL-terminated.
pub const CORE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
/// The symbol a plugin exports.
pub const SYMBOL: &str = "CLUSTERM_PLUGIN";

/// What a plugin exports. The first three fields are read before anything else.
#[repr(C)]
pub struct PluginDeclaration {
    /// Must equal [`ABI_VERSION`].
    pub abi_version: u32,
    /// Must equal the host's [`RUSTC_VERSION`].
    pub rustc_version: *const c_char,
    /// Must equal the host's [`CORE_VERSION`].
    pub core_version: *const c_char,
    /// Registers the plugin's factories; called only when the versions match.
    pub register: fn(&mut Registrar),
}

// SAFETY: the declaration is immutable static data (two pointers to string literals
// and a function pointer); sharing it between threads cannot race.
unsafe impl Sync for PluginDeclaration {}

/// Exports `$register` (a `fn(&mut Registrar)`) as this library's plugin declaration.
#[macro_export]
macro_rules! export_plugin {
    ($register:path) => {
        #[unsafe(no_mangle)]
        pub static CLUSTERM_PLUGIN: $crate::registry::plugin::PluginDeclaration =
            $crate::registry::plugin::PluginDeclaration {
                abi_version: $crate::registry::plugin::ABI_VERSION,
                rustc_version: $crate::registry::plugin::RUSTC_VERSION.as_ptr().cast(),
                core_version: $crate::registry::plugin::CORE_VERSION.as_ptr().cast(),
                register: $register,
            };
    };
}

/// Collects the factories a plugin registers.
#[derive(Default)]
pub struct Registrar {
    pub(super) stores: Vec<StoreFactory>,
    pub(super) pushes: Vec<PushFactory>,
    pub(super) backends: Vec<BackendFactory>,
    pub(super) discoveries: Vec<DiscoveryFactory>,
}

impl Registrar {
    /// Registers an inventory store.
    pub fn store(&mut self, f: StoreFactory) {
        self.stores.push(f);
    }

    /// Registers a configuration push.
    pub fn push(&mut self, f: PushFactory) {
        self.pushes.push(f);
    }

    /// Registers a clustering backend.
    pub fn backend(&mut self, f: BackendFactory) {
        self.backends.push(f);
    }

    /// Registers a discovery source.
    pub fn discovery(&mut self, f: DiscoveryFactory) {
        self.discoveries.push(f);
    }

    fn names(&self) -> Vec<String> {
        let kinds = [
            (
                "store",
                self.stores.iter().map(|f| f.name).collect::<Vec<_>>(),
            ),
            ("push", self.pushes.iter().map(|f| f.name).collect()),
            ("backend", self.backends.iter().map(|f| f.name).collect()),
            (
                "discovery",
                self.discoveries.iter().map(|f| f.name).collect(),
            ),
        ];
        kinds
            .into_iter()
            .flat_map(|(k, names)| names.into_iter().map(move |n| format!("{k}:{n}")))
            .collect()
    }

    fn absorb(&mut self, other: Registrar) {
        self.stores.extend(other.stores);
        self.pushes.extend(other.pushes);
        self.backends.extend(other.backends);
        self.discoveries.extend(other.discoveries);
    }
}

/// Factories registered by loaded plugins.
pub(super) static LOADED: RwLock<Registrar> = RwLock::new(Registrar {
    stores: Vec::new(),
    pushes: Vec::new(),
    backends: Vec::new(),
    discoveries: Vec::new(),
});

fn mismatch(path: &Path, what: &str, plugin: &str, host: &str) -> Error {
    Error::Config {
        component: format!("plugin {}", path.display()),
        message: format!(
            "built with {what} {plugin:?}, this host has {host:?}; rebuild the plugin"
        ),
    }
}

/// Checks a declaration's versions against the host's.
///
/// # Safety
/// `decl` must point to a readable `PluginDeclaration` whose version pointers, when
/// its ABI version matches, point to NUL-terminated strings.
pub unsafe fn check(path: &Path, decl: *const PluginDeclaration) -> Result<()> {
    // SAFETY: the caller guarantees `decl` is readable; `abi_version` is the first
    // field of a `repr(C)` struct, so its offset is the same in every ABI version.
    let abi = unsafe { (*decl).abi_version };
    if abi != ABI_VERSION {
        return Err(mismatch(
            path,
            "plugin ABI",
            &abi.to_string(),
            &ABI_VERSION.to_string(),
        ));
    }
    let host = |s: &'static str| s.trim_end_matches('\0');
    // SAFETY: same ABI version, so these are the NUL-terminated version strings.
    let (rustc, core) = unsafe {
        (
            CStr::from_ptr((*decl).rustc_version)
                .to_string_lossy()
                .into_owned(),
            CStr::from_ptr((*decl).core_version)
                .to_string_lossy()
                .into_owned(),
        )
    };
    if rustc != host(RUSTC_VERSION) {
        return Err(mismatch(path, "rustc", &rustc, host(RUSTC_VERSION)));
    }
    if core != host(CORE_VERSION) {
        return Err(mismatch(path, "cluster-core", &core, host(CORE_VERSION)));
    }
    Ok(())
}

/// Loads the plugin at `path` and registers its factories; returns what it registered
/// as `kind:name`. The library stays loaded for the life of the process.
pub fn load(path: &Path) -> Result<Vec<String>> {
    let component = || format!("plugin {}", path.display());
    // SAFETY: loading runs the library's initialisers; a clusterm plugin is a Rust
    // cdylib whose initialisers are the standard ones. Loading arbitrary libraries is
    // the operator's decision, as with any plugin system.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| Error::Config {
        component: component(),
        message: e.to_string(),
    })?;
    // SAFETY: the symbol is looked up as a pointer to the declaration; nothing is read
    // until `check` has verified the layout version.
    let decl: *const PluginDeclaration = unsafe {
        *lib.get::<*const PluginDeclaration>(SYMBOL.as_bytes())
            .map_err(|e| Error::Config {
                component: component(),
                message: format!("not a clusterm plugin (no {SYMBOL} symbol): {e}"),
            })?
    };
    // SAFETY: `decl` comes from the library's exported static.
    unsafe { check(path, decl)? };
    let mut registrar = Registrar::default();
    // SAFETY: ABI, compiler and cluster-core versions match, so `register` has the
    // signature and the types it touches have the layout this host expects.
    (unsafe { &*decl }.register)(&mut registrar);
    let names = registrar.names();
    LOADED
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .absorb(registrar);
    // The factories point into the library's code: it must never be unloaded.
    std::mem::forget(lib);
    tracing::info!(plugin = %path.display(), registered = ?names, "plugin loaded");
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register_nothing(_: &mut Registrar) {}

    fn decl(abi: u32, rustc: &'static str, core: &'static str) -> PluginDeclaration {
        PluginDeclaration {
            abi_version: abi,
            rustc_version: rustc.as_ptr().cast(),
            core_version: core.as_ptr().cast(),
            register: register_nothing,
        }
    }

    #[test]
    fn versions_must_match_exactly() {
        let p = Path::new("libx.so");
        let ok = decl(ABI_VERSION, RUSTC_VERSION, CORE_VERSION);
        unsafe { check(p, &ok) }.unwrap();

        let e = unsafe { check(p, &decl(ABI_VERSION + 1, RUSTC_VERSION, CORE_VERSION)) };
        let msg = e.unwrap_err().to_string();
        assert!(
            msg.contains("plugin ABI") && msg.contains("libx.so"),
            "{msg}"
        );

        let e = unsafe { check(p, &decl(ABI_VERSION, "rustc 1.0.0 (old)\0", CORE_VERSION)) };
        let msg = e.unwrap_err().to_string();
        assert!(
            msg.contains("rustc 1.0.0 (old)") && msg.contains("rebuild"),
            "{msg}"
        );

        let e = unsafe { check(p, &decl(ABI_VERSION, RUSTC_VERSION, "0.0.1\0")) };
        assert!(e.unwrap_err().to_string().contains("cluster-core"));
    }

    #[test]
    fn a_library_without_the_symbol_is_refused() {
        let e = load(Path::new("libc.so.6")).unwrap_err();
        assert!(e.to_string().contains("not a clusterm plugin"), "{e}");
        let e = load(Path::new("/nonexistent/libnothing.so")).unwrap_err();
        assert_eq!(e.code(), "config");
    }
}
