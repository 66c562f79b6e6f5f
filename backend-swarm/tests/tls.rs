//! The Swarm backend reaching an engine over TCP with mutual TLS (`dockerd
//! --tlsverify`): with the right client certificate it bootstraps and reads the swarm;
//! without TLS, or with a certificate from another CA, every call fails with an error
//! naming the node.

use backend_swarm::{SwarmBackend, SwarmConfig, TlsConfig};
use cluster_core::{BackendNode, ClusterBackend, Role};
use clusterm_tests::dockerd::{DockerdSet, TlsFiles};

const ADDR: &str = "127.0.0.1";

fn master() -> BackendNode {
    BackendNode {
        name: "tls1".into(),
        addr: ADDR.into(),
        role: Role::Master,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_behind_mutual_tls_is_driven_only_with_a_trusted_client_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let tls = TlsFiles::generate(&certs.path().join("good"), ADDR);
    let other = TlsFiles::generate(&certs.path().join("other"), ADDR);
    let api_port = clusterm_tests::free_port(ADDR);
    let daemons = DockerdSet::start_with(&[ADDR], |_, ip| tls.dockerd_args(ip, api_port));

    let config = SwarmConfig {
        engine: format!("tcp://{{addr}}:{api_port}"),
        swarm_port: clusterm_tests::free_port(ADDR),
        tls: Some(TlsConfig {
            ca: tls.ca.clone(),
            cert: tls.client_cert.clone(),
            key: tls.client_key.clone(),
        }),
        ..SwarmConfig::default()
    };

    let plain = SwarmBackend::new(SwarmConfig {
        tls: None,
        ..config.clone()
    })
    .unwrap();
    let err = plain.bootstrap(&master()).await.unwrap_err().to_string();
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
    let err = untrusted
        .bootstrap(&master())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"tls1\"") && err.contains("unreachable"),
        "{err}"
    );

    let d = &daemons.daemons()[0];
    let state = |d: &clusterm_tests::dockerd::Dockerd| {
        let out = d.docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(
        state(d),
        "inactive",
        "refused clients must not have changed anything"
    );

    let backend = SwarmBackend::new(config).unwrap();
    backend.bootstrap(&master()).await.unwrap();
    let start = std::time::Instant::now();
    loop {
        let members = backend.members().await.unwrap();
        assert_eq!(members.len(), 1, "{members:?}");
        assert_eq!(
            (members[0].name.as_str(), members[0].role),
            ("tls1", Role::Master)
        );
        if members[0].ready {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "never ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(state(d), "active");

    backend.leave(&master()).await.unwrap();
    assert_eq!(state(d), "inactive");
    backend.leave(&master()).await.unwrap();
}
