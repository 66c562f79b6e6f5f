//! Framing of the Serf RPC byte stream. The agent writes bare msgpack values back to
//! back (a response header, then maybe a body) with no length prefix, so the only way to
//! find where one ends is to walk its markers. This module measures one value without
//! decoding it; it never recurses (a hostile nesting depth cannot overflow the stack)
//! and never trusts a length beyond [`MAX_FRAME`].

/// Largest single value accepted from the agent (a member list of ~100,000 members).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Why the bytes cannot be a msgpack value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A marker byte msgpack never uses (0xc1).
    BadMarker {
        /// The byte.
        marker: u8,
        /// Where it was, from the start of the value.
        offset: usize,
    },
    /// The value claims to be larger than [`MAX_FRAME`].
    TooLarge,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadMarker { marker, offset } => {
                write!(
                    f,
                    "invalid msgpack marker 0x{marker:02x} at offset {offset}"
                )
            }
            FrameError::TooLarge => write!(f, "value larger than {MAX_FRAME} bytes"),
        }
    }
}

/// The length of the msgpack value at the start of `buf`: `Ok(None)` when `buf` holds
/// only part of it.
pub fn value_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let mut pos = 0usize;
    // Values still to walk; each needs at least one byte, so a count beyond the frame
    // limit can only come from a lie.
    let mut pending: u64 = 1;
    while pending > 0 {
        if pending > MAX_FRAME as u64 {
            return Err(FrameError::TooLarge);
        }
        let Some(&marker) = buf.get(pos) else {
            return Ok(None);
        };
        pending -= 1;
        let (head, payload, children): (usize, u64, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0, 0),
            0x80..=0x8f => (1, 0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (1, 0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (1, u64::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => match be(buf, pos + 1, 1) {
                Some(n) => (2, n, 0),
                None => return Ok(None),
            },
            0xc5 | 0xda => match be(buf, pos + 1, 2) {
                Some(n) => (3, n, 0),
                None => return Ok(None),
            },
            0xc6 | 0xdb => match be(buf, pos + 1, 4) {
                Some(n) => (5, n, 0),
                None => return Ok(None),
            },
            // ext 8/16/32: length, then a type byte, then the data.
            0xc7 => match be(buf, pos + 1, 1) {
                Some(n) => (3, n, 0),
                None => return Ok(None),
            },
            0xc8 => match be(buf, pos + 1, 2) {
                Some(n) => (4, n, 0),
                None => return Ok(None),
            },
            0xc9 => match be(buf, pos + 1, 4) {
                Some(n) => (6, n, 0),
                None => return Ok(None),
            },
            0xca => (5, 0, 0),
            0xcb => (9, 0, 0),
            0xcc | 0xd0 => (2, 0, 0),
            0xcd | 0xd1 => (3, 0, 0),
            0xce | 0xd2 => (5, 0, 0),
            0xcf | 0xd3 => (9, 0, 0),
            0xd4 => (3, 0, 0),
            0xd5 => (4, 0, 0),
            0xd6 => (6, 0, 0),
            0xd7 => (10, 0, 0),
            0xd8 => (18, 0, 0),
            0xdc => match be(buf, pos + 1, 2) {
                Some(n) => (3, 0, n),
                None => return Ok(None),
            },
            0xdd => match be(buf, pos + 1, 4) {
                Some(n) => (5, 0, n),
                None => return Ok(None),
            },
            0xde => match be(buf, pos + 1, 2) {
                Some(n) => (3, 0, 2 * n),
                None => return Ok(None),
            },
            0xdf => match be(buf, pos + 1, 4) {
                Some(n) => (5, 0, 2 * n),
                None => return Ok(None),
            },
            0xc1 => {
                return Err(FrameError::BadMarker {
                    marker,
                    offset: pos,
                });
            }
        };
        let end = pos as u64 + head as u64 + payload;
        if end > MAX_FRAME as u64 {
            return Err(FrameError::TooLarge);
        }
        pos = end as usize;
        pending += children;
    }
    if pos > buf.len() {
        return Ok(None);
    }
    Ok(Some(pos))
}

/// A big-endian length of `width` bytes at `at`, or `None` when not all there yet.
fn be(buf: &[u8], at: usize, width: usize) -> Option<u64> {
    let bytes = buf.get(at..at + width)?;
    Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Sample {
        seq: u64,
        error: String,
        tags: std::collections::BTreeMap<String, String>,
        list: Vec<i64>,
        #[serde(with = "crate::wire::bytes")]
        payload: Vec<u8>,
        float: f64,
        none: Option<u8>,
    }

    fn sample() -> Vec<u8> {
        let s = Sample {
            seq: u64::MAX,
            error: "x".repeat(300),
            tags: (0..20).map(|i| (format!("k{i}"), "v".repeat(i))).collect(),
            list: vec![-1, -200, 70_000, -5_000_000_000, 0],
            payload: vec![7; 70_000],
            float: 1.5,
            none: None,
        };
        rmp_serde::to_vec_named(&s).unwrap()
    }

    #[test]
    fn measures_a_whole_value_and_reports_every_prefix_as_incomplete() {
        let bytes = sample();
        assert_eq!(value_len(&bytes), Ok(Some(bytes.len())));
        for cut in [0, 1, 2, 10, 400, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(value_len(&bytes[..cut]), Ok(None), "prefix of {cut} bytes");
        }
    }

    #[test]
    fn stops_at_the_end_of_the_first_of_two_values() {
        let mut bytes = sample();
        let first = bytes.len();
        bytes.extend(rmp_serde::to_vec(&(1u8, "two")).unwrap());
        assert_eq!(value_len(&bytes), Ok(Some(first)));
    }

    #[test]
    fn rejects_the_unused_marker_and_lying_lengths() {
        assert!(matches!(
            value_len(&[0x92, 0x01, 0xc1]),
            Err(FrameError::BadMarker {
                marker: 0xc1,
                offset: 2
            })
        ));
        // A 4 GiB string and a map of 4 billion entries are refused before any reading.
        assert_eq!(
            value_len(&[0xdb, 0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::TooLarge)
        );
        assert_eq!(
            value_len(&[0xdf, 0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::TooLarge)
        );
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let mut bytes = vec![0x91; 1_000_000];
        bytes.push(0x01);
        assert_eq!(value_len(&bytes), Ok(Some(bytes.len())));
    }
}
