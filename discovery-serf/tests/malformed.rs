//! A peer that does not speak Serf RPC properly: every violation is a typed error,
//! never a panic and never a wait without end. The peer is a plain TCP listener on
//! loopback that answers the handshake correctly and then sends scripted bytes.

use std::time::Duration;

use discovery_serf::{ClientOptions, SerfClient, SerfError, value_len};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Header {
    seq: u64,
    error: &'static str,
}

fn header(seq: u64) -> Vec<u8> {
    rmp_serde::to_vec_named(&Header { seq, error: "" }).unwrap()
}

/// Reads `n` msgpack values from the client.
async fn read_values(sock: &mut TcpStream, buf: &mut Vec<u8>, n: usize) {
    for _ in 0..n {
        loop {
            if let Some(len) = value_len(buf).unwrap() {
                buf.drain(..len);
                break;
            }
            let mut chunk = [0u8; 4096];
            let got = sock.read(&mut chunk).await.unwrap();
            assert!(got > 0, "client closed early");
            buf.extend_from_slice(&chunk[..got]);
        }
    }
}

/// Serves one client: handshake ok, then on the first `members` request writes
/// `reply` and either closes or keeps the socket open.
async fn peer(reply: Vec<u8>, close: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        read_values(&mut sock, &mut buf, 2).await; // handshake header + body
        sock.write_all(&header(0)).await.unwrap();
        read_values(&mut sock, &mut buf, 1).await; // members header
        sock.write_all(&reply).await.unwrap();
        if close {
            return;
        }
        // Hold the connection open and silent.
        let mut rest = [0u8; 1024];
        while sock.read(&mut rest).await.is_ok_and(|n| n > 0) {}
    });
    addr
}

async fn members_with(reply: Vec<u8>, close: bool) -> SerfError {
    let addr = peer(reply, close).await;
    let options = ClientOptions::new(&addr).timeout(Duration::from_secs(2));
    let client = SerfClient::connect(&options).await.unwrap();
    let err = client.members().await.unwrap_err();
    // A broken stream is finished for good: later calls fail at once with the same
    // reason. (A well-framed reply of the wrong shape fails only its own call.)
    if !client.is_open() {
        let again = client.members().await.unwrap_err();
        assert_eq!(again.to_string(), err.to_string());
    }
    err
}

fn members_body(addr: &[u8]) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct M<'a> {
        name: &'a str,
        #[serde(with = "serde_bytes_like")]
        addr: &'a [u8],
        port: u16,
        status: &'a str,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Body<'a> {
        members: Vec<M<'a>>,
    }
    mod serde_bytes_like {
        pub fn serialize<S: serde::Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b)
        }
    }
    rmp_serde::to_vec_named(&Body {
        members: vec![M {
            name: "n1",
            addr,
            port: 7946,
            status: "alive",
        }],
    })
    .unwrap()
}

#[tokio::test]
async fn a_well_formed_reply_from_the_peer_decodes() {
    let mut reply = header(1);
    reply.extend(members_body(&[127, 0, 0, 9]));
    let addr = peer(reply, false).await;
    let client = SerfClient::connect(&ClientOptions::new(&addr))
        .await
        .unwrap();
    let members = client.members().await.unwrap();
    assert_eq!(members[0].name, "n1");
    assert_eq!(members[0].addr.to_string(), "127.0.0.9");
}

#[tokio::test]
async fn an_invalid_marker_is_a_protocol_error() {
    let mut reply = header(1);
    reply.push(0xc1);
    let err = members_with(reply, false).await;
    assert!(err.is_connection());
    assert!(
        matches!(err, SerfError::Protocol { ref message, .. } if message.contains("0xc1")),
        "{err}"
    );
}

#[tokio::test]
async fn a_value_that_is_not_a_header_is_a_protocol_error() {
    let reply = rmp_serde::to_vec(&"hello").unwrap();
    let err = members_with(reply, false).await;
    assert!(
        matches!(err, SerfError::Protocol { ref message, .. } if message.contains("response header")),
        "{err}"
    );
}

#[tokio::test]
async fn an_answer_to_no_request_is_a_protocol_error() {
    let err = members_with(header(99), false).await;
    assert!(
        matches!(err, SerfError::Protocol { ref message, .. } if message.contains("99")),
        "{err}"
    );
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_is_a_protocol_error() {
    let mut reply = header(1);
    reply.extend(rmp_serde::to_vec(&[1, 2, 3]).unwrap());
    let err = members_with(reply, false).await;
    assert!(
        matches!(err, SerfError::Protocol { ref message, .. } if message.contains("members response")),
        "{err}"
    );
    let mut reply = header(1);
    reply.extend(members_body(&[1, 2, 3]));
    let err = members_with(reply, false).await;
    assert!(
        matches!(err, SerfError::Protocol { ref message, .. } if message.contains("3-byte address")),
        "{err}"
    );
}

#[tokio::test]
async fn a_frame_cut_short_by_a_close_is_a_disconnect() {
    let mut reply = header(1);
    let body = members_body(&[127, 0, 0, 9]);
    reply.extend(&body[..body.len() / 2]);
    let err = members_with(reply, true).await;
    assert!(
        matches!(err, SerfError::Disconnected { ref message, .. } if message.contains("middle of a frame")),
        "{err}"
    );
}

#[tokio::test]
async fn a_frame_cut_short_on_an_open_connection_times_out() {
    let mut reply = header(1);
    let body = members_body(&[127, 0, 0, 9]);
    reply.extend(&body[..body.len() - 3]);
    let err = members_with(reply, false).await;
    assert!(
        matches!(err, SerfError::Timeout { ref command, .. } if command == "members"),
        "{err}"
    );
}

#[tokio::test]
async fn an_absurd_length_is_refused_before_reading_it() {
    let mut reply = header(1);
    reply.extend([0xdb, 0xff, 0xff, 0xff, 0xf0]);
    let err = members_with(reply, false).await;
    assert!(
        matches!(err, SerfError::Protocol { ref message, .. } if message.contains("larger than")),
        "{err}"
    );
}

#[tokio::test]
async fn a_peer_that_never_answers_the_handshake_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hold = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(sock);
    });
    let options = ClientOptions::new(&addr).timeout(Duration::from_millis(500));
    let err = SerfClient::connect(&options).await.unwrap_err();
    assert!(
        matches!(err, SerfError::Timeout { ref command, .. } if command == "handshake"),
        "{err}"
    );
    hold.abort();
}
