//! The Serf RPC client against real serf agents: every command, streams, several calls
//! on one connection, and errors the agent reports.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use clusterm_tests::serf::{SerfAgent, SerfAgentSpec};
use common::blocking;
use discovery_serf::{
    ClientOptions, EventStream, MemberEventKind, SerfClient, SerfError, SerfStatus, StreamEvent,
};

const WAIT: Duration = Duration::from_secs(90);

/// The next stream record matching `pred`, skipping others.
async fn next_matching(
    stream: &mut EventStream,
    what: &str,
    mut pred: impl FnMut(&StreamEvent) -> bool,
) -> StreamEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let item = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|| panic!("stream ended waiting for {what}"))
            .unwrap_or_else(|e| panic!("stream error waiting for {what}: {e}"));
        if pred(&item) {
            return item;
        }
    }
}

fn member_event(ev: &StreamEvent, want: MemberEventKind, node: &str) -> bool {
    matches!(ev, StreamEvent::Member { kind, members } if *kind == want && members.iter().any(|m| m.name == node))
}

async fn connect(agent: &SerfAgent) -> SerfClient {
    SerfClient::connect(&ClientOptions::new(agent.rpc_addr()))
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", agent.node()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_works_against_a_real_agent() {
    let a0 = blocking(|| SerfAgent::start(SerfAgentSpec::new("c0").tag("role", "web")));
    let mut a1 = blocking(|| SerfAgent::start(SerfAgentSpec::new("c1").tag("role", "db")));
    let client = connect(&a0).await;
    let mut stream = client
        .stream("member-join,member-leave,member-failed,member-update,user:deploy")
        .await
        .unwrap();

    assert_eq!(client.join(&[a1.gossip_addr()], false).await.unwrap(), 1);
    next_matching(&mut stream, "c1 joining", |e| {
        member_event(e, MemberEventKind::Join, "c1")
    })
    .await;

    let members = client.members().await.unwrap();
    assert_eq!(members.len(), 2, "{members:?}");
    let c1 = members.iter().find(|m| m.name == "c1").unwrap();
    assert_eq!(c1.addr.to_string(), a1.ip());
    assert_eq!(
        c1.port,
        a1.gossip_addr()
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap()
    );
    assert_eq!(c1.status, SerfStatus::Alive);
    assert_eq!(c1.tags.get("role").map(String::as_str), Some("db"));

    let web = BTreeMap::from([("role".to_owned(), "w.b".to_owned())]);
    let only_c0 = client.members_filtered(&web, "alive", "").await.unwrap();
    assert_eq!(
        only_c0.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["c0"]
    );
    let by_name = client
        .members_filtered(&BTreeMap::new(), "", "c1")
        .await
        .unwrap();
    assert_eq!(
        by_name.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["c1"]
    );

    // Many calls in flight on one connection each get their own answer.
    let calls = (0..32).map(|_| client.members());
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().len(), 2);
    }

    let set = BTreeMap::from([("NodeSerial".to_owned(), "SN-C0".to_owned())]);
    client.tags(&set, &["role".to_owned()]).await.unwrap();
    let update = next_matching(&mut stream, "c0's tag update", |e| {
        member_event(e, MemberEventKind::Update, "c0")
    })
    .await;
    let StreamEvent::Member { members, .. } = update else {
        unreachable!()
    };
    let tags = &members.iter().find(|m| m.name == "c0").unwrap().tags;
    assert_eq!(tags.get("NodeSerial").map(String::as_str), Some("SN-C0"));
    assert!(!tags.contains_key("role"), "{tags:?}");

    client.event("deploy", b"v2\x00\xff", false).await.unwrap();
    let user = next_matching(&mut stream, "the deploy event", |e| {
        matches!(e, StreamEvent::User { .. })
    })
    .await;
    let StreamEvent::User { name, payload, .. } = user else {
        unreachable!()
    };
    assert_eq!(
        (name.as_str(), payload.as_slice()),
        ("deploy", &b"v2\x00\xff"[..])
    );

    blocking(|| a1.kill());
    next_matching(&mut stream, "c1 failing", |e| {
        member_event(e, MemberEventKind::Failed, "c1")
    })
    .await;
    client.force_leave("c1").await.unwrap();
    next_matching(&mut stream, "c1 forced out", |e| {
        member_event(e, MemberEventKind::Leave, "c1")
    })
    .await;

    stream.stop().await.unwrap();
    assert_eq!(client.members().await.unwrap().len(), 2);

    let mut a0 = a0;
    client.leave().await.unwrap();
    assert!(
        blocking(|| a0.wait_exit(WAIT)),
        "c0 did not exit after leave"
    );
    let err = client.members().await.unwrap_err();
    assert!(err.is_connection(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_commands_are_rpc_errors_and_the_connection_stays_in_step() {
    let a0 = blocking(|| SerfAgent::start(SerfAgentSpec::new("e0")));
    let client = connect(&a0).await;

    // Nobody listens there: the agent answers with an error and a body.
    let dead = format!("{}:{}", a0.ip(), clusterm_tests::free_port(a0.ip()));
    let err = client.join(&[dead], false).await.unwrap_err();
    assert!(
        matches!(err, SerfError::Rpc { ref command, .. } if command == "join"),
        "{err}"
    );

    let err = client.stream("no-such-event").await.unwrap_err();
    assert!(
        matches!(err, SerfError::Rpc { ref message, .. } if message.contains("filter")),
        "{err}"
    );

    let members = client.members().await.unwrap();
    assert_eq!(members.len(), 1);
    assert!(client.is_open());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_key_is_required_and_checked() {
    let agent = blocking(|| SerfAgent::start(SerfAgentSpec::new("k0").rpc_auth("right-key")));
    let options = ClientOptions::new(agent.rpc_addr());

    let good = SerfClient::connect(&options.clone().auth_key(Some("right-key".into())))
        .await
        .unwrap();
    assert_eq!(good.members().await.unwrap().len(), 1);

    let err = SerfClient::connect(&options.clone().auth_key(Some("wrong-key".into())))
        .await
        .unwrap_err();
    assert!(matches!(err, SerfError::Auth { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("authentication failed") && msg.contains(&agent.rpc_addr()),
        "{msg}"
    );
    assert!(!msg.contains("wrong-key") && !format!("{err:?}").contains("wrong-key"));

    let anonymous = SerfClient::connect(&options).await.unwrap();
    let err = anonymous.members().await.unwrap_err();
    assert!(
        matches!(err, SerfError::Auth { ref message, .. } if message == "Authentication required"),
        "{err}"
    );
}
