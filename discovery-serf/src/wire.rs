//! The Serf RPC wire types (IPC version 1): request and response headers, request
//! bodies, and the records the agent sends back. Field names are the agent's own
//! (Go `PascalCase`); every record is a msgpack map.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

/// The IPC protocol version this client speaks.
pub const IPC_VERSION: i32 = 1;

/// Sent before every request.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestHeader<'a> {
    pub command: &'a str,
    pub seq: u64,
}

/// Sent by the agent before every response and every streamed record.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResponseHeader {
    pub seq: u64,
    #[serde(default, deserialize_with = "nil_default")]
    pub error: String,
}

/// Body of `handshake`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Handshake {
    pub version: i32,
}

/// Body of `auth`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Auth<'a> {
    pub auth_key: &'a str,
}

/// Body of `members-filtered`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MembersFiltered<'a> {
    pub tags: &'a BTreeMap<String, String>,
    pub status: &'a str,
    pub name: &'a str,
}

/// Body of `stream`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stream<'a> {
    #[serde(rename = "Type")]
    pub kind: &'a str,
}

/// Body of `stop`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stop {
    pub stop: u64,
}

/// Body of `join`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Join<'a> {
    pub existing: &'a [String],
    pub replay: bool,
}

/// Answer to `join`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinResponse {
    pub num: i64,
}

/// Body of `force-leave`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ForceLeave<'a> {
    pub node: &'a str,
    pub prune: bool,
}

/// Body of `tags`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tags<'a> {
    pub tags: &'a BTreeMap<String, String>,
    pub delete_tags: &'a [String],
}

/// Body of `event`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserEvent<'a> {
    pub name: &'a str,
    #[serde(with = "bytes")]
    pub payload: &'a [u8],
    pub coalesce: bool,
}

/// Answer to `members` and `members-filtered`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MembersResponse {
    #[serde(default, deserialize_with = "nil_default")]
    pub members: Vec<WireMember>,
}

/// A member as the agent encodes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireMember {
    pub name: String,
    #[serde(with = "bytes")]
    pub addr: Vec<u8>,
    pub port: u16,
    #[serde(default, deserialize_with = "nil_default")]
    pub tags: BTreeMap<String, String>,
    pub status: String,
    #[serde(default)]
    pub protocol_cur: u8,
}

/// Any record of an event stream; which fields are set depends on `Event`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventRecord {
    pub event: String,
    #[serde(default, deserialize_with = "nil_default")]
    pub members: Vec<WireMember>,
    #[serde(default, rename = "LTime")]
    pub ltime: u64,
    #[serde(default, rename = "ID")]
    pub id: u64,
    #[serde(default, deserialize_with = "nil_default")]
    pub name: String,
    #[serde(default, with = "bytes")]
    pub payload: Vec<u8>,
    #[serde(default)]
    pub coalesce: bool,
}

/// Decodes a member address: the agent sends Go's `net.IP`, 16 bytes (IPv4 mapped into
/// IPv6) or 4.
pub fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?).to_canonical()),
        _ => None,
    }
}

/// `nil` (Go's nil map, slice or string) as the type's default.
fn nil_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Byte strings as msgpack `bin` (what Go's `[]byte` is); accepts `bin`, `str`, an
/// array of small integers, or `nil` when reading.
pub mod bytes {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes `bin`.
    pub fn serialize<S: Serializer, B: AsRef<[u8]> + ?Sized>(
        b: &B,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b.as_ref())
    }

    /// Reads any encoding Go's codec may have used.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_any(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<Vec<u8>, E> {
            Ok(v.as_bytes().to_vec())
        }

        fn visit_unit<E: Error>(self) -> Result<Vec<u8>, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: Error>(self) -> Result<Vec<u8>, E> {
            Ok(Vec::new())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_decode_from_both_go_forms() {
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[127, 0, 0, 7]);
        assert_eq!(ip_from_bytes(&mapped), Some("127.0.0.7".parse().unwrap()));
        assert_eq!(
            ip_from_bytes(&[10, 1, 2, 3]),
            Some("10.1.2.3".parse().unwrap())
        );
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let IpAddr::V6(raw) = v6 else { unreachable!() };
        assert_eq!(ip_from_bytes(&raw.octets()), Some(v6));
        assert_eq!(ip_from_bytes(&[1, 2, 3]), None);
    }

    #[test]
    fn records_with_nil_collections_decode() {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Raw {
            event: &'static str,
            members: Option<Vec<u8>>,
            name: Option<String>,
            payload: Option<Vec<u8>>,
        }
        let bytes = rmp_serde::to_vec_named(&Raw {
            event: "user",
            members: None,
            name: None,
            payload: None,
        })
        .unwrap();
        let rec: EventRecord = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(rec.event, "user");
        assert!(rec.members.is_empty() && rec.name.is_empty() && rec.payload.is_empty());
    }
}
