//! Reading the times and dates vendors send, and where a date-only day ends.

use chrono::{
    DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc,
};
use chrono_tz::Tz;

/// What an effective time may look like, for error messages.
pub(crate) const EFFECTIVE_EXPECTED: &str =
    "an RFC 3339 time (2024-03-15T17:00:00+01:00) or a date (2024-03-15)";

/// Reads an effective time: a full time keeps its offset; a time without offset is wall time
/// in `tz`; a date-only value is the last day of employment, so access ends at the next
/// day's 00:00 in `tz`. `date_format` (strftime) is tried last, for date-only values.
pub(crate) fn parse_effective(
    s: &str,
    tz: Tz,
    date_format: Option<&str>,
) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if let Some(t) = parse_with_offset(s) {
        return Some(t);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return end_of_day(d, tz);
    }
    if let Some(n) = parse_naive(s) {
        return local(n, tz);
    }
    if let Some(fmt) = date_format {
        if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
            return end_of_day(d, tz);
        }
    }
    None
}

/// A time that carries its own offset: RFC 3339, or ISO 8601 with a `+0000` style offset.
pub(crate) fn parse_with_offset(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t);
        }
    }
    None
}

/// A date and time without an offset (`2024-03-27T09:12:21.680867`).
pub(crate) fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|fmt| NaiveDateTime::parse_from_str(s, fmt).ok())
}

/// A time that must name an instant: offset-carrying, or unix seconds; none is read in a zone.
pub(crate) fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .ok()
            .and_then(from_unix)
            .map(|t| t.to_utc());
    }
    parse_with_offset(s).map(|t| t.to_utc())
}

/// Unix seconds as a UTC time.
pub(crate) fn from_unix(secs: i64) -> Option<DateTime<FixedOffset>> {
    DateTime::from_timestamp(secs, 0).map(|t| t.fixed_offset())
}

/// The instant a last day of employment ends: the next day's 00:00 in `tz`.
pub(crate) fn end_of_day(last_day: NaiveDate, tz: Tz) -> Option<DateTime<FixedOffset>> {
    let next = last_day.succ_opt()?;
    local(next.and_hms_opt(0, 0, 0)?, tz)
}

/// Wall time in `tz`; in a DST gap the first existing minute after it, when ambiguous the
/// earlier of the two.
pub(crate) fn local(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<FixedOffset>> {
    for shift in 0..=3 {
        let candidate = naive + Duration::hours(shift);
        match tz.from_local_datetime(&candidate) {
            LocalResult::Single(t) => return Some(t.fixed_offset()),
            LocalResult::Ambiguous(a, _) => return Some(a.fixed_offset()),
            LocalResult::None => continue,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_only_ends_at_next_midnight_in_zone() {
        let tz: Tz = "Europe/Berlin".parse().expect("zone");
        let t = parse_effective("2024-01-31", tz, None).expect("parsed");
        assert_eq!(t.to_rfc3339(), "2024-02-01T00:00:00+01:00");
        let t = parse_effective("2024-07-31", tz, None).expect("parsed");
        assert_eq!(t.to_rfc3339(), "2024-08-01T00:00:00+02:00");
    }

    #[test]
    fn offsets_are_kept() {
        let t = parse_effective("2024-03-15T17:00:00-05:00", Tz::UTC, None).expect("parsed");
        assert_eq!(t.to_rfc3339(), "2024-03-15T17:00:00-05:00");
        let t = parse_effective("2026-01-31T18:42:00+0000", Tz::UTC, None).expect("parsed");
        assert_eq!(t.to_rfc3339(), "2026-01-31T18:42:00+00:00");
    }

    #[test]
    fn dst_gap_moves_forward() {
        // America/Havana skips from 00:00 to 01:00 on its spring-forward day.
        let tz: Tz = "America/Havana".parse().expect("zone");
        let t = end_of_day(NaiveDate::from_ymd_opt(2024, 3, 9).expect("date"), tz).expect("t");
        assert_eq!(t.to_rfc3339(), "2024-03-10T01:00:00-04:00");
    }

    #[test]
    fn custom_date_format() {
        let t = parse_effective("15/03/2024", Tz::UTC, Some("%d/%m/%Y")).expect("parsed");
        assert_eq!(t.to_rfc3339(), "2024-03-16T00:00:00+00:00");
        assert!(parse_effective("15/03/2024", Tz::UTC, None).is_none());
    }

    #[test]
    fn instants() {
        assert_eq!(
            parse_instant("1700000000").map(|t| t.timestamp()),
            Some(1_700_000_000)
        );
        assert!(parse_instant("2024-03-15").is_none());
        assert!(parse_instant("yesterday").is_none());
    }
}
