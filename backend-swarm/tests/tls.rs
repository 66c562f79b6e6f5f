//! The Swarm backend reaching engines over TCP with mutual TLS (`dockerd --tlsverify`):
//! with the right client certificate it bootstraps, reads join tokens, joins a second
//! engine and reads the swarm; without TLS, or with a certificate from another CA, every
//! call fails with an error naming the node and nothing changes.

use std::time::{Duration, Instant};

use backend_swarm::{SwarmBackend, SwarmConfig, TlsConfig};
use cluster_core::{BackendMember, BackendNode, ClusterBackend, Role};
use clusterm_tests::dockerd::{Dockerd, DockerdSet, TlsFiles};

const ADDRS: [&str; 2] = ["127.0.0.1", "127.0.0.2"];

fn node(name: &str, addr: &str, role: Role) -> BackendNode {
    BackendNode {
        name: name.into(),
        addr: addr.into(),
        role,
    }
}

fn state(d: &Dockerd) -> String {
    let out = d.docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls `members()` until every one of `want` is present and ready.
async fn wait_ready(b: &SwarmBackend, want: &[(&str, Role)]) -> Vec<BackendMember> {
    let start = Instant::now();
    loop {
        let members = b.members().await.unwrap();
        let all = want.iter().all(|(n, r)| {
            members
                .iter()
                .any(|m| m.name == *n && m.role == *r && m.ready)
        });
        if all && members.len() == want.len() {
            return members;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "never ready: {members:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_behind_mutual_tls_are_driven_only_with_a_trusted_client_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let tls = TlsFiles::generate(&certs.path().join("good"), &ADDRS);
    let other = TlsFiles::generate(&certs.path().join("other"), &ADDRS);
    let api_port = loop {
        let p = clusterm_tests::free_port(ADDRS[0]);
        if std::net::TcpListener::bind((ADDRS[1], p)).is_ok() {
            break p;
        }
    };
    let daemons = DockerdSet::start_with(&ADDRS, |_, ip| tls.dockerd_args(ip, api_port));
    let (d1, d2) = (&daemons.daemons()[0], &daemons.daemons()[1]);

    let config = SwarmConfig {
        engine: format!("tcp://{{addr}}:{api_port}"),
        swarm_port: clusterm_tests::free_port(ADDRS[0]),
        tls: Some(TlsConfig {
            ca: tls.ca.clone(),
            cert: tls.client_cert.clone(),
            key: tls.client_key.clone(),
        }),
        ..SwarmConfig::default()
    };
    let (m1, w2) = (
        node("tls1", ADDRS[0], Role::Master),
        node("tls2", ADDRS[1], Role::Worker),
    );

    let plain = SwarmBackend::new(SwarmConfig {
        tls: None,
        ..config.clone()
    })
    .unwrap();
    let err = plain.bootstrap(&m1).await.unwrap_err().to_string();
    assert!(err.contains("\"tls1\""), "{err}");

    let untrusted = SwarmBackend::new(SwarmConfig {
        tls: Some(TlsConfig {
            ca: tls.ca.clone(),
            cert: other.client_cert.clone(),
            key: other.client_key.clone(),
        }),
        ..config.clone()
    })
    .unwrap();
    let err = untrusted.bootstrap(&m1).await.unwrap_err().to_string();
    assert!(
        err.contains("\"tls1\"") && err.contains("unreachable"),
        "{err}"
    );
    assert_eq!(state(d1), "inactive", "a refused client changed the engine");

    let backend = SwarmBackend::new(config).unwrap();
    backend.bootstrap(&m1).await.unwrap();
    wait_ready(&backend, &[("tls1", Role::Master)]).await;

    // The join token is read and used over TLS too; an untrusted client cannot join.
    let err = untrusted.join(&w2).await.unwrap_err().to_string();
    assert!(err.contains("\"tls2\""), "{err}");
    assert_eq!(state(d2), "inactive");
    backend.join(&w2).await.unwrap();
    wait_ready(&backend, &[("tls1", Role::Master), ("tls2", Role::Worker)]).await;
    assert_eq!(state(d2), "active");

    backend.leave(&w2).await.unwrap();
    backend.leave(&m1).await.unwrap();
    assert_eq!(
        (state(d1), state(d2)),
        ("inactive".into(), "inactive".into())
    );
    backend.leave(&m1).await.unwrap();
}
