//! Join tokens: held in a type whose `Debug` and `Display` never show the value, and a
//! scrubber for engine messages, which may quote what they were sent.

/// A swarm join token; formatting it prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken(String);

impl JoinToken {
    /// Wraps a token as received from a manager.
    pub fn new(token: String) -> Self {
        JoinToken(token)
    }

    /// The token itself, for the one request that sends it to an engine.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinToken(<redacted>)")
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Swarm join tokens start with this.
const TOKEN_PREFIX: &str = "SWMTKN-";

/// `text` with every swarm join token replaced by `SWMTKN-<redacted>`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(TOKEN_PREFIX) {
        out.push_str(&rest[..at]);
        out.push_str(TOKEN_PREFIX);
        out.push_str("<redacted>");
        let after = &rest[at + TOKEN_PREFIX.len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_a_token_never_shows_it() {
        let t = JoinToken::new("SWMTKN-1-abc-def".into());
        assert_eq!(format!("{t}"), "<redacted>");
        assert_eq!(format!("{t:?}"), "JoinToken(<redacted>)");
        assert_eq!(t.expose(), "SWMTKN-1-abc-def");
    }

    #[test]
    fn redact_replaces_every_token_and_keeps_the_rest() {
        let msg = "join with \"SWMTKN-1-21dik-30g31\" failed; retry SWMTKN-1-x_y.";
        assert_eq!(
            redact(msg),
            "join with \"SWMTKN-<redacted>\" failed; retry SWMTKN-<redacted>."
        );
        assert_eq!(redact("no secret here"), "no secret here");
        assert_eq!(redact("SWMTKN-"), "SWMTKN-<redacted>");
    }
}
