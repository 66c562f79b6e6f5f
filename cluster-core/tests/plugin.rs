//! Dynamic plugins end to end: the example plugin is built as a real `cdylib`, loaded,
//! and its push used by a manager.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use cluster_core::manager::Request;
use cluster_core::registry::{self, plugin};
use cluster_core::{
    ConfigPush, JobStatus, Manager, Member, MembershipEvent, MembershipKind, MemoryStore,
};
use serde_json::json;

/// Builds `clusterm-plugin-hello` with the cargo running this test and returns the library.
fn build_plugin() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "-p", "clusterm-plugin-hello"])
        .current_dir(&workspace)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building the plugin failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = target.join("debug/libclusterm_plugin_hello.so");
    assert!(lib.is_file(), "{} missing", lib.display());
    lib
}

#[tokio::test]
async fn a_built_plugin_registers_a_push_the_manager_can_use() {
    let lib = build_plugin();
    let names = plugin::load(&lib).expect("plugin loads");
    assert_eq!(names, vec!["push:hello"]);
    assert!(registry::names::<dyn ConfigPush>().contains(&"hello"));

    let push = registry::build::<dyn ConfigPush>("hello", json!({"greeting": "welcome"}))
        .await
        .unwrap();
    let m = Manager::builder(Arc::new(MemoryStore::new()))
        .push(push)
        .start()
        .await
        .unwrap();
    m.membership(MembershipEvent {
        kind: MembershipKind::Joined,
        member: Member::alive("n1", "127.0.0.1"),
    })
    .unwrap();
    m.settle().await.unwrap();
    let id = m
        .commission(Request::nodes(["n1"]).host_group("service-worker"))
        .await
        .unwrap();
    assert_eq!(m.wait_job(id).await.unwrap().status, JobStatus::Complete);
    let log = m.job_log(id).unwrap().lines_after(0);
    assert!(
        log.iter().any(|l| l.text == "welcome n1 (provision)"),
        "{log:?}"
    );
}
