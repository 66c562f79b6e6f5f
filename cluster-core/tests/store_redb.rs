//! The redb store against the store conformance kit, including reopening the file
//! after the writing process was killed with SIGKILL in the middle of its batches.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cluster_core::store::RedbStore;
use cluster_core::testkit::store::{
    check_after_crash, crash_writer, reopen_conformance, store_conformance,
};
use cluster_core::{InventoryStore, registry};
use serde_json::json;

/// Set in the child process to the data dir it writes to.
const CHILD_DIR: &str = "CLUSTERM_CRASH_WRITER_DIR";

#[tokio::test]
async fn redb_store_passes_the_conformance_kit() {
    let base = tempfile::tempdir().unwrap();
    let count = AtomicUsize::new(0);
    store_conformance(|| {
        let dir = base
            .path()
            .join(count.fetch_add(1, Ordering::Relaxed).to_string());
        Arc::new(RedbStore::open(dir).unwrap()) as Arc<dyn InventoryStore>
    })
    .await;
}

#[tokio::test]
async fn redb_store_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    reopen_conformance(move || {
        Arc::new(RedbStore::open(&path).unwrap()) as Arc<dyn InventoryStore>
    })
    .await;
}

#[tokio::test]
async fn registry_builds_redb_in_the_configured_dir_and_rejects_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = registry::build::<dyn InventoryStore>("redb", json!({ "dir": data }))
        .await
        .unwrap();
    assert_eq!(store.name(), "redb");
    assert!(data.join(cluster_core::store::redb::FILE_NAME).is_file());

    let err = registry::build::<dyn InventoryStore>("redb", json!({ "dri": data }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "config");
    assert!(err.to_string().contains("dri"), "{err}");
}

#[tokio::test]
async fn a_second_open_of_a_live_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _first = RedbStore::open(dir.path()).unwrap();
    let err = RedbStore::open(dir.path()).unwrap_err();
    assert_eq!(err.code(), "store");
    assert!(err.to_string().contains("inventory.redb"), "{err}");
}

/// The child body: only does something when started by the kill test below.
#[tokio::test]
#[ignore = "started as a child process by kill_9_mid_batch_loses_no_acknowledged_batch"]
async fn crash_writer_child() {
    let dir = PathBuf::from(std::env::var_os(CHILD_DIR).expect("child dir"));
    let store = RedbStore::open(dir).unwrap();
    crash_writer(&store, std::io::stdout()).await;
}

#[tokio::test]
async fn kill_9_mid_batch_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    for (round, kill_after) in [3u64, 17, 40].into_iter().enumerate() {
        let mut child = clusterm_tests::process::spawn_test_child(
            "crash_writer_child",
            (CHILD_DIR, dir.path()),
        )
        .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut acked = 0;
        while acked < kill_after {
            assert!(Instant::now() < deadline, "writer too slow: {acked} acks");
            let line = lines
                .next()
                .expect("writer exited early")
                .expect("read writer output");
            if let Some(k) = line.strip_prefix("acked ") {
                acked = k.trim().parse().unwrap();
            }
        }
        // The writer is in its next batch (or its commit) right now.
        child.kill().unwrap();
        child.wait().unwrap();
        // Acks printed between our last read and the kill count too.
        for line in lines.map_while(Result::ok) {
            if let Some(k) = line.strip_prefix("acked ") {
                acked = k.trim().parse().unwrap();
            }
        }
        let store = RedbStore::open(dir.path()).unwrap();
        check_after_crash(&store, acked).await;
        drop(store);
        // The next round's writer starts from a cleanly emptied file.
        std::fs::remove_dir_all(dir.path()).unwrap();
        assert!(acked >= kill_after, "round {round}");
    }
}
