//! `Retry-After` in both of its forms (RFC 9110 §10.2.3): delay-seconds and an HTTP-date.

use std::time::{Duration, SystemTime};

/// How long a receiver asks to wait, seen at `now`: seconds as given, an HTTP-date as the time
/// left until it (zero if it has passed). Garbage is None. No cap here: the caller bounds the
/// wait by its own deadline, which is the only limit that knows how much time is left.
///
/// ```
/// use kdbprom::push::retry_after::retry_after_at;
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
/// assert_eq!(retry_after_at(Some(" 120 "), now), Some(Duration::from_secs(120)));
/// assert_eq!(retry_after_at(Some("Wed, 21 Oct 2015 07:28:30 GMT"), now), Some(Duration::from_secs(30)));
/// assert_eq!(retry_after_at(Some("Wed, 21 Oct 2015 07:00:00 GMT"), now), Some(Duration::ZERO));
/// assert_eq!(retry_after_at(Some("soon"), now), None);
/// assert_eq!(retry_after_at(None, now), None);
/// ```
pub fn retry_after_at(v: Option<&str>, now: SystemTime) -> Option<Duration> {
    let v = v?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn every_form_and_garbage() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let at = |v: &str| retry_after_at(Some(v), now);
        assert_eq!(at("0"), Some(Duration::ZERO));
        // The obsolete date forms RFC 9110 still asks recipients to accept.
        assert_eq!(at("Wednesday, 21-Oct-15 07:29:00 GMT"), Some(Duration::from_secs(60)));
        assert_eq!(at("Wed Oct 21 07:28:05 2015"), Some(Duration::from_secs(5)));
        // Absurdly far is returned as is; the caller's deadline bounds it.
        assert_eq!(at("Fri, 01 Jan 2100 00:00:00 GMT"), Some(Duration::from_secs(4_102_444_800 - 1_445_412_480)));
        assert_eq!(at("18446744073709551615"), Some(Duration::from_secs(u64::MAX)));
        for bad in ["", "-5", "1.5", "10s", "18446744073709551616", "Wed, 32 Oct 2015 07:28:00 GMT"] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }
}
