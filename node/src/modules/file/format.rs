//! The text forms MIG's file module used: Go's file-mode strings, Go's
//! time strings, and the size and mtime filter syntax.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Go's `os.FileMode.String()` for a Unix `st_mode`: type and special
/// letters from `dalTLDpSugct?`, or `-`, then `rwxrwxrwx`.
pub fn go_mode_string(mode: u32) -> String {
    let file_type = mode & libc_s_ifmt();
    let mut text = String::new();
    let mut letter = |condition: bool, c: char| {
        if condition {
            text.push(c);
        }
    };
    letter(file_type == 0o040000, 'd');
    letter(file_type == 0o120000, 'L');
    letter(file_type == 0o060000 || file_type == 0o020000, 'D');
    letter(file_type == 0o010000, 'p');
    letter(file_type == 0o140000, 'S');
    letter(mode & 0o4000 != 0, 'u');
    letter(mode & 0o2000 != 0, 'g');
    letter(file_type == 0o020000, 'c');
    letter(mode & 0o1000 != 0, 't');
    if text.is_empty() {
        text.push('-');
    }
    for (bit, c) in [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ] {
        text.push(if mode & bit != 0 { c } else { '-' });
    }
    text
}

const fn libc_s_ifmt() -> u32 {
    0o170000
}

/// Go's `time.Time.UTC().String()`: `2016-07-05 15:32:42 +0000 UTC`, with
/// the fraction of a second when there is one.
pub fn go_time_string(time: SystemTime) -> String {
    let (seconds, nanos) = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => (after.as_secs() as i64, after.subsec_nanos()),
        Err(before) => {
            let before = before.duration();
            let mut seconds = -(before.as_secs() as i64);
            let mut nanos = before.subsec_nanos();
            if nanos > 0 {
                seconds -= 1;
                nanos = 1_000_000_000 - nanos;
            }
            (seconds, nanos)
        }
    };
    let Ok(datetime) = time::OffsetDateTime::from_unix_timestamp(seconds) else {
        return format!("@{seconds}");
    };
    let mut text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        datetime.year(),
        u8::from(datetime.month()),
        datetime.day(),
        datetime.hour(),
        datetime.minute(),
        datetime.second()
    );
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push_str(" +0000 UTC");
    text
}

/// A size filter: `<10m`, `>1k`, `4096` (powers of 1024). Returns the
/// inclusive bounds in bytes.
pub fn parse_size(text: &str) -> Result<(u64, u64), String> {
    let bad =
        || format!("invalid size '{text}': expected like <10m, >1k or 4096 (suffix k, m, g or t)");
    let (comparison, rest) = match text.chars().next() {
        Some(c @ ('<' | '>')) => (Some(c), &text[1..]),
        _ => (None, text),
    };
    let (digits, multiplier) = match rest.chars().last() {
        Some('k') => (&rest[..rest.len() - 1], 1u64 << 10),
        Some('m') => (&rest[..rest.len() - 1], 1 << 20),
        Some('g') => (&rest[..rest.len() - 1], 1 << 30),
        Some('t') => (&rest[..rest.len() - 1], 1 << 40),
        _ => (rest, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let amount: u64 = digits.parse().map_err(|_| bad())?;
    let bytes = amount.checked_mul(multiplier).ok_or_else(bad)?;
    Ok(match comparison {
        Some('<') => (0, bytes),
        Some(_) => (bytes, u64::MAX),
        None => (bytes, bytes),
    })
}

/// An mtime filter: `<90d` (modified within the last 90 days), `>5h`
/// (modified more than 5 hours ago); units d, h, m. Returns the exclusive
/// window of modification times, relative to `now`.
pub fn parse_mtime(text: &str, now: SystemTime) -> Result<(SystemTime, SystemTime), String> {
    let bad = || format!("invalid mtime '{text}': expected like <90d, >5h or <30m");
    let comparison = text.chars().next().ok_or_else(bad)?;
    let unit = text.chars().last().ok_or_else(bad)?;
    if text.len() < 3 || !matches!(comparison, '<' | '>') {
        return Err(bad());
    }
    let digits = &text[1..text.len() - 1];
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let amount: u64 = digits.parse().map_err(|_| bad())?;
    let unit_seconds = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        _ => return Err(bad()),
    };
    let span = Duration::from_secs(amount.checked_mul(unit_seconds).ok_or_else(bad)?);
    let boundary = now.checked_sub(span).unwrap_or(UNIX_EPOCH);
    Ok(if comparison == '<' {
        (
            boundary,
            SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799),
        )
    } else {
        (
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(62_135_596_800))
                .unwrap_or(UNIX_EPOCH),
            boundary,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings_match_go() {
        assert_eq!(go_mode_string(0o100755), "-rwxr-xr-x");
        assert_eq!(go_mode_string(0o100640), "-rw-r-----");
        assert_eq!(go_mode_string(0o104755), "urwxr-xr-x");
        assert_eq!(go_mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(go_mode_string(0o041777), "dtrwxrwxrwx");
        assert_eq!(go_mode_string(0o120777), "Lrwxrwxrwx");
        assert_eq!(go_mode_string(0o020666), "Dcrw-rw-rw-");
        assert_eq!(go_mode_string(0o010644), "prw-r--r--");
    }

    #[test]
    fn time_strings_match_go() {
        let time = UNIX_EPOCH + Duration::from_secs(1_467_732_762);
        assert_eq!(go_time_string(time), "2016-07-05 15:32:42 +0000 UTC");
        assert_eq!(
            go_time_string(time + Duration::from_millis(120)),
            "2016-07-05 15:32:42.12 +0000 UTC"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("<10m").unwrap(), (0, 10 << 20));
        assert_eq!(parse_size(">1k").unwrap(), (1024, u64::MAX));
        assert_eq!(parse_size("4096").unwrap(), (4096, 4096));
        for bad in ["", "<", "10x", "<-1", "99999999999999999999t", "1.5m"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mtimes() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let (after, _) = parse_mtime("<1d", now).unwrap();
        assert_eq!(after, now - Duration::from_secs(86_400));
        let (_, before) = parse_mtime(">5h", now).unwrap();
        assert_eq!(before, now - Duration::from_secs(5 * 3600));
        for bad in ["", "1d", "<d", "<5w", "<5.5h"] {
            assert!(parse_mtime(bad, now).is_err(), "{bad}");
        }
    }
}
