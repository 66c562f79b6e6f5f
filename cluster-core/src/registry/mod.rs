//! The plugin registry: every implementation submits a named factory with the
//! `inventory` crate, and the daemon builds what its configuration names.
//!
//! ```ignore
//! inventory::submit! { StoreFactory::new("memory", build_memory) }
//! let store = registry::build::<dyn InventoryStore>("memory", json!({})).await?;
//! ```

pub mod plugin;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::{ClusterBackend, ConfigPush, Discovery, InventoryStore};

/// The future a factory returns.
pub type BuildFuture<T> = Pin<Box<dyn Future<Output = Result<Arc<T>>> + Send>>;

/// A named constructor of one implementation of the component trait `T`.
pub struct Factory<T: ?Sized + 'static> {
    /// The name configurations use (`redb`, `serf`, ...).
    pub name: &'static str,
    /// Builds the implementation from its configuration section (a JSON object).
    pub build: fn(Value) -> BuildFuture<T>,
}

impl<T: ?Sized + 'static> Clone for Factory<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized + 'static> Copy for Factory<T> {}

impl<T: ?Sized + 'static> Factory<T> {
    /// A factory for `inventory::submit!`.
    pub const fn new(name: &'static str, build: fn(Value) -> BuildFuture<T>) -> Self {
        Factory { name, build }
    }
}

/// Factory of an [`InventoryStore`].
pub type StoreFactory = Factory<dyn InventoryStore>;
/// Factory of a [`ConfigPush`].
pub type PushFactory = Factory<dyn ConfigPush>;
/// Factory of a [`ClusterBackend`].
pub type BackendFactory = Factory<dyn ClusterBackend>;
/// Factory of a [`Discovery`].
pub type DiscoveryFactory = Factory<dyn Discovery>;

inventory::collect!(StoreFactory);
inventory::collect!(PushFactory);
inventory::collect!(BackendFactory);
inventory::collect!(DiscoveryFactory);

/// A component trait that has a registry.
pub trait Component: 'static {
    /// The registry's name in messages (`store`, `push`, ...).
    const KIND: &'static str;
    /// Factories of this kind registered by loaded plugins.
    fn loaded(reg: &plugin::Registrar) -> &[Factory<Self>];
}

impl Component for dyn InventoryStore {
    const KIND: &'static str = "store";
    fn loaded(reg: &plugin::Registrar) -> &[Factory<Self>] {
        &reg.stores
    }
}
impl Component for dyn ConfigPush {
    const KIND: &'static str = "push";
    fn loaded(reg: &plugin::Registrar) -> &[Factory<Self>] {
        &reg.pushes
    }
}
impl Component for dyn ClusterBackend {
    const KIND: &'static str = "backend";
    fn loaded(reg: &plugin::Registrar) -> &[Factory<Self>] {
        &reg.backends
    }
}
impl Component for dyn Discovery {
    const KIND: &'static str = "discovery";
    fn loaded(reg: &plugin::Registrar) -> &[Factory<Self>] {
        &reg.discoveries
    }
}

/// Every factory of component `T`: built-in (`inventory`) ones first, then plugins'.
fn factories<T>() -> Vec<Factory<T>>
where
    T: Component + ?Sized,
    Factory<T>: inventory::Collect,
{
    let loaded = plugin::LOADED.read().unwrap_or_else(|p| p.into_inner());
    inventory::iter::<Factory<T>>
        .into_iter()
        .copied()
        .chain(T::loaded(&loaded).iter().copied())
        .collect()
}

/// Every registered name for component `T`, sorted.
pub fn names<T>() -> Vec<&'static str>
where
    T: Component + ?Sized,
    Factory<T>: inventory::Collect,
{
    let mut names: Vec<_> = factories::<T>().into_iter().map(|f| f.name).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Builds the implementation of `T` registered as `name` from `config`.
pub async fn build<T>(name: &str, config: Value) -> Result<Arc<T>>
where
    T: Component + ?Sized,
    Factory<T>: inventory::Collect,
{
    let factory = factories::<T>()
        .into_iter()
        .find(|f| f.name == name)
        .ok_or_else(|| Error::UnknownComponent {
            kind: T::KIND,
            name: name.to_owned(),
            known: names::<T>(),
        })?;
    (factory.build)(config).await
}

/// Deserialises a factory's config section, naming the component in the error.
pub fn parse_config<C: serde::de::DeserializeOwned>(component: &str, config: Value) -> Result<C> {
    let config = if config.is_null() {
        Value::Object(Default::default())
    } else {
        config
    };
    serde_json::from_value(config).map_err(|e| Error::Config {
        component: component.to_owned(),
        message: e.to_string(),
    })
}

fn build_memory(_: Value) -> BuildFuture<dyn InventoryStore> {
    Box::pin(async { Ok(Arc::new(crate::store::MemoryStore::new()) as Arc<dyn InventoryStore>) })
}

fn build_noop(_: Value) -> BuildFuture<dyn ConfigPush> {
    Box::pin(async { Ok(Arc::new(crate::push::NoopPush) as Arc<dyn ConfigPush>) })
}

inventory::submit! { StoreFactory::new("memory", build_memory) }
inventory::submit! { PushFactory::new("noop", build_noop) }

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builds_registered_names_and_lists_known_ones_on_a_miss() {
        let store = build::<dyn InventoryStore>("memory", Value::Null)
            .await
            .unwrap();
        assert_eq!(store.name(), "memory");
        let push = build::<dyn ConfigPush>("noop", Value::Null).await.unwrap();
        assert_eq!(push.name(), "noop");

        let err = build::<dyn InventoryStore>("mongo", Value::Null)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.code(), "unknown_component");
        assert!(
            msg.contains("store") && msg.contains("\"mongo\"") && msg.contains("memory"),
            "{msg}"
        );
        assert!(names::<dyn InventoryStore>().contains(&"memory"));
        assert!(names::<dyn Discovery>().is_empty());
    }
}
