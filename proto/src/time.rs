//! Timestamps and durations as the protocol sees them: whole Unix seconds,
//! written as RFC 3339 for people. `mig-proto` never reads the clock; callers
//! pass the current time in.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time with one-second resolution (Unix seconds, UTC).
///
/// Actions carry their validity window at this resolution; fractions of a
/// second in a JSON action are dropped when it is read, so the text and the
/// signed bytes cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// The span of years a timestamp may name; outside it RFC 3339 has no form.
const MIN_UNIX_SECONDS: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
const MAX_UNIX_SECONDS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("'{text}' is not an RFC 3339 time (like 2026-11-28T17:00:00Z): {reason}")]
    NotRfc3339 { text: String, reason: String },
    #[error("{seconds} is outside the years 1 to 9999")]
    OutOfRange { seconds: i64 },
    #[error(
        "'{text}' is not a duration: write a whole number followed by s, m, h or d (like 300s, 30m, 2h, 7d)"
    )]
    BadDuration { text: String },
}

impl Timestamp {
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// Converts a `SystemTime` (which the caller read), saturating at the
    /// representable range. Reading the clock stays the caller's business.
    pub fn from_system_time(time: std::time::SystemTime) -> Self {
        let seconds = match time.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
        };
        Self(seconds.clamp(MIN_UNIX_SECONDS, MAX_UNIX_SECONDS))
    }

    /// The timestamp `seconds` after the Unix epoch, if RFC 3339 can write it.
    pub fn from_unix_seconds(seconds: i64) -> Result<Self, TimeError> {
        if (MIN_UNIX_SECONDS..=MAX_UNIX_SECONDS).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(TimeError::OutOfRange { seconds })
        }
    }

    pub fn unix_seconds(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (any offset); fractions of a second are dropped.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimeError> {
        let parsed =
            OffsetDateTime::parse(text, &Rfc3339).map_err(|error| TimeError::NotRfc3339 {
                text: text.to_owned(),
                reason: error.to_string(),
            })?;
        Self::from_unix_seconds(parsed.unix_timestamp())
    }

    /// `self + seconds`, saturating at the representable range.
    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(
            self.0
                .saturating_add(seconds)
                .clamp(MIN_UNIX_SECONDS, MAX_UNIX_SECONDS),
        )
    }

    /// Seconds from `earlier` to `self` (negative if `earlier` is later).
    pub fn seconds_since(self, earlier: Timestamp) -> i64 {
        self.0 - earlier.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // In range by construction, so formatting cannot fail; fall back to
        // the raw number rather than panic if that ever stops being true.
        match OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|datetime| datetime.format(&Rfc3339).ok())
        {
            Some(text) => formatter.write_str(&text),
            None => write!(formatter, "@{}", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

/// Parses a duration as MIG's command line wrote them: `300s`, `30m`, `2h`,
/// `7d`. Returns whole seconds.
pub fn parse_duration_seconds(text: &str) -> Result<i64, TimeError> {
    let bad = || TimeError::BadDuration {
        text: text.to_owned(),
    };
    let trimmed = text.trim();
    let unit_start = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(bad)?;
    let (digits, unit) = trimmed.split_at(unit_start);
    if digits.is_empty() || digits.len() > 12 {
        return Err(bad());
    }
    let amount: i64 = digits.parse().map_err(|_| bad())?;
    let multiplier = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    Ok(amount * multiplier)
}

/// Writes seconds the way people read a validity window: `6m`, `1h30m`, `7d`.
pub fn format_duration_seconds(seconds: i64) -> String {
    if seconds == 0 {
        return "0s".to_owned();
    }
    let sign = if seconds < 0 { "-" } else { "" };
    let mut rest = seconds.unsigned_abs();
    let mut text = String::from(sign);
    for (unit, size) in [("d", 86_400u64), ("h", 3_600), ("m", 60), ("s", 1)] {
        if rest >= size {
            text.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_at_second_resolution() {
        let time = Timestamp::parse_rfc3339("2014-09-03T18:00:00.999+02:00").unwrap();
        assert_eq!(time.to_string(), "2014-09-03T16:00:00Z");
        assert_eq!(Timestamp::parse_rfc3339(&time.to_string()).unwrap(), time);
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert!(Timestamp::parse_rfc3339("2014-09-03 18:00").is_err());
        assert!(Timestamp::from_unix_seconds(i64::MAX).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_seconds("300s").unwrap(), 300);
        assert_eq!(parse_duration_seconds("30m").unwrap(), 1800);
        assert_eq!(parse_duration_seconds("7d").unwrap(), 604_800);
        for bad in ["", "s", "10", "10w", "-5m", "99999999999999d"] {
            assert!(parse_duration_seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration_seconds(5400), "1h30m");
        assert_eq!(format_duration_seconds(-60), "-1m");
    }
}
