//! Keeps credentials out of what kdbprom passes on: receivers' bodies, transport errors, URLs.

use crate::config::Auth;
use base64::Engine;

/// What a credential is replaced with.
pub const REDACTED: &str = "<redacted>";

/// The credentials of one target, to take out of any text before it reaches q, stats or stderr.
///
/// ```
/// use kdbprom::push::redact::Redactor;
/// let r = Redactor::new(&kdbprom::config::Auth::default());
/// assert_eq!(
///     r.redact("401: header Authorization: Basic dTpw refused for http://u:p@h:9090/w"),
///     "401: header Authorization: <redacted> refused for http://<redacted>@h:9090/w",
/// );
/// assert_eq!(r.redact("no token: Bearer abc.def"), "no token: Bearer <redacted>");
/// ```
#[derive(Clone, Default)]
pub struct Redactor {
    /// Configured secrets, longest first so that one secret inside another leaves no part behind.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// The redactor of a target with these credentials (basic-auth password, bearer token).
    pub fn new(auth: &Auth) -> Redactor {
        let mut secrets = Vec::new();
        if let Some(b) = &auth.basic {
            secrets.push(b.password.expose().to_string());
            // A receiver may echo the header value without its "Basic " prefix.
            secrets.push(base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", b.username, b.password.expose())));
        }
        if let Some(t) = &auth.bearer {
            secrets.push(t.expose().to_string());
        }
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `s` with every configured secret, every `Authorization`/`Bearer`/`Basic` value and every
    /// URL userinfo replaced by [`REDACTED`].
    pub fn redact(&self, s: &str) -> String {
        let s = redact_auth_values(&strip_userinfo(s));
        if self.secrets.is_empty() {
            return s;
        }
        // Secrets are replaced only between the markers already set, so a secret that happens
        // to occur in the word "redacted" cannot mangle them.
        s.split(REDACTED)
            .map(|part| self.secrets.iter().fold(part.to_string(), |p, secret| p.replace(secret.as_str(), REDACTED)))
            .collect::<Vec<_>>()
            .join(REDACTED)
    }
}

/// Replaces the userinfo of every URL in `s`: `scheme://user:pass@host` becomes
/// `scheme://<redacted>@host`. The userinfo is what lies between `://` and the last `@` before
/// the next `/` (or white space or quote), so a password holding `@` or `?` goes entirely.
///
/// ```
/// use kdbprom::push::redact::strip_userinfo;
/// assert_eq!(strip_userinfo("GET https://u:p@ss@h/x@y failed"), "GET https://<redacted>@h/x@y failed");
/// assert_eq!(strip_userinfo("http://h:1/metrics/job@base64/eA"), "http://h:1/metrics/job@base64/eA");
/// ```
pub fn strip_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(|c: char| c == '/' || c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>')).unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) if at > 0 => {
                out.push_str(REDACTED);
                rest = &tail[at..];
            }
            _ => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// Replaces the values of `Authorization:`/`authorization=` (any case, `Proxy-Authorization`
/// included) and the credential after `Bearer `/`Basic `.
fn redact_auth_values(s: &str) -> String {
    // ASCII lowercasing keeps every byte offset, so matches in `lower` index `s` directly; all
    // patterns and delimiters are ASCII, so every cut falls on a character boundary.
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let (mut copied, mut p) = (0, 0);
    while p < s.len() {
        match auth_value_at(&lower, p) {
            Some((start, end)) => {
                out.push_str(&s[copied..start]);
                out.push_str(REDACTED);
                (copied, p) = (end, end);
            }
            None => p += 1,
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// The byte range of a credential whose key starts at `p`, if one does.
fn auth_value_at(lower: &str, p: usize) -> Option<(usize, usize)> {
    let b = lower.as_bytes();
    // Bytes, not str: `p` may fall inside a multi-byte character, where no ASCII pattern matches.
    let rest = &b[p..];
    let skip = |mut i: usize, what: &[u8]| {
        while i < b.len() && what.contains(&b[i]) {
            i += 1;
        }
        i
    };
    let (start, end) = if rest.starts_with(b"authorization") {
        // `Authorization: v`, `authorization=v`, `"authorization": "v"`.
        let i = skip(p + "authorization".len(), b"\"'");
        let i = skip(i, b" \t");
        if !matches!(b.get(i), Some(b':' | b'=')) {
            return None;
        }
        let start = skip(i + 1, b" \t");
        if let Some(&q @ (b'"' | b'\'')) = b.get(start) {
            let start = start + 1;
            let end = b[start..].iter().position(|&c| c == q || c == b'\n' || c == b'\r').map_or(b.len(), |n| start + n);
            return (end > start).then_some((start, end));
        }
        // `[`, `{`, `(`: the value as a Go map or a debug print wraps it.
        let start = skip(start, b"[{(");
        let run = |i: usize| b[i..].iter().position(|c| c.is_ascii_whitespace() || b",;&\"'<>]})".contains(c)).map_or(b.len(), |n| i + n);
        let end = run(start);
        // A scheme name (`Basic`, `Bearer`, `Digest`...) is followed by the credential itself.
        let scheme = end > start && b[start..end].iter().all(u8::is_ascii_alphabetic);
        let cred = skip(end, b" \t");
        (start, if scheme && run(cred) > cred { run(cred) } else { end })
    } else if let Some(scheme) = [&b"bearer "[..], b"basic "].into_iter().find(|s| rest.starts_with(s)) {
        if p > 0 && (b[p - 1].is_ascii_alphanumeric() || b[p - 1] == b'_') {
            return None;
        }
        let start = skip(p + scheme.len(), b" \t");
        // token68 (RFC 9110 §11.2): what a bearer token or a base64 user:password is made of.
        let end = b[start..].iter().position(|&c| !(c.is_ascii_alphanumeric() || b"-._~+/=".contains(&c))).map_or(b.len(), |n| start + n);
        (start, end)
    } else {
        return None;
    };
    (end > start).then_some((start, end))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
///
/// ```
/// use kdbprom::push::redact::cut_on_char;
/// assert_eq!(cut_on_char("né", 2), "n");
/// assert_eq!(cut_on_char("né", 3), "né");
/// assert_eq!(cut_on_char("abc", 10), "abc");
/// ```
pub fn cut_on_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Auth, Config};
    use serde_json::json;

    /// The auth block of a target whose secret `key` (`basic_auth` or `bearer_token_file`) is `secret`,
    /// read from a file as users must.
    fn auth(key: &str, secret: &str) -> Auth {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let f = std::env::temp_dir().join(format!("kdbprom-redact-{}-{n}", std::process::id()));
        std::fs::write(&f, secret).unwrap();
        let block = match key {
            "basic_auth" => json!({"url": "http://h:1", "basic_auth": {"username": "u", "password_file": f}}),
            _ => json!({"url": "http://h:1", "bearer_token_file": f}),
        };
        let c = Config::from_json(&json!({ "pushgateway": block })).unwrap();
        std::fs::remove_file(&f).unwrap();
        c.pushgateway.unwrap().auth
    }

    #[test]
    fn echoed_authorization_header_is_redacted() {
        let r = Redactor::new(&Auth::default());
        assert_eq!(
            r.redact("bad request: got headers {Authorization: Basic dTpw}"),
            "bad request: got headers {Authorization: <redacted>}"
        );
        assert_eq!(r.redact("Authorization: Basic dTpw\nnext line"), "Authorization: <redacted>\nnext line");
        assert_eq!(r.redact(r#"{"authorization":"Bearer x.y.z","n":1}"#), r#"{"authorization":"<redacted>","n":1}"#);
        assert_eq!(r.redact("GET /w?authorization=abc&x=1"), "GET /w?authorization=<redacted>&x=1");
        assert_eq!(r.redact("Proxy-Authorization: Basic Zm9v"), "Proxy-Authorization: <redacted>");
        assert_eq!(r.redact("map[Authorization:[Bearer tok] X:[1]]"), "map[Authorization:[<redacted>] X:[1]]");
        assert_eq!(r.redact("BASIC dTpw and bearer abc"), "BASIC <redacted> and bearer <redacted>");
        assert_eq!(r.redact("authorization: "), "authorization: ");
        assert_eq!(r.redact("nothing here: 42 é"), "nothing here: 42 é");
    }

    #[test]
    fn configured_secrets_are_redacted_wherever_they_appear() {
        let r = Redactor::new(&auth("basic_auth", "hunter2"));
        assert_eq!(r.redact("password hunter2 is wrong"), "password <redacted> is wrong");
        assert_eq!(r.redact("user=u pass=hunter2hunter2"), "user=u pass=<redacted><redacted>");
        // base64("u:hunter2") without its scheme.
        assert_eq!(r.redact("token dTpodW50ZXIy unknown"), "token <redacted> unknown");
        assert!(!format!("{r:?}").contains("hunter2"));
        // A secret that is part of the marker's own text cannot mangle it.
        let r = Redactor::new(&auth("basic_auth", "dact"));
        assert_eq!(r.redact("Bearer zz dact"), "Bearer <redacted> <redacted>");
    }

    #[test]
    fn bearer_token_is_a_secret() {
        let r = Redactor::new(&auth("bearer_token_file", "tok-123"));
        assert_eq!(r.redact("token tok-123 expired"), "token <redacted> expired");
    }

    #[test]
    fn url_userinfo_is_stripped() {
        assert_eq!(strip_userinfo("http://u:secret@h:bad/"), "http://<redacted>@h:bad/");
        assert_eq!(strip_userinfo("a http://h/ b https://x@y c"), "a http://h/ b https://<redacted>@y c");
        assert_eq!(strip_userinfo("'http://u:p?q@h' x@y"), "'http://<redacted>@h' x@y");
        assert_eq!(strip_userinfo("http://@h/"), "http://@h/");
        assert_eq!(strip_userinfo("no url"), "no url");
    }

    #[test]
    fn cut_keeps_whole_characters() {
        let s = "a".repeat(254) + "é";
        assert_eq!(cut_on_char(&s, 255).len(), 254);
        assert_eq!(cut_on_char(&s, 256), s);
        assert_eq!(cut_on_char("€", 2), "");
        assert_eq!(cut_on_char("", 0), "");
    }
}
