//! Durations as traces write them: `500ms`, `12.5s`, `10m`, `2h`, `1m30s`.

use std::time::Duration;

use super::parse::Problem;

/// `500ms`, `12.5s`, `10m`, `2h`, `1m30s`: numbers with units, added up.
pub(super) fn duration(s: &str) -> Result<Duration, Problem> {
    let bad = || Problem::BadDuration(s.to_owned());
    let is_number = |c: char| c.is_ascii_digit() || c == '.';
    let mut rest = s;
    let mut nanos: u128 = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !is_number(c)).ok_or_else(bad)?;
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail.find(is_number).unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        rest = tail;
        let unit: u128 = match unit {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty())
            || !all_digits(whole)
            || !all_digits(fraction)
            || fraction.len() > 9
        {
            return Err(bad());
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let scale = 10u128.pow(fraction.len() as u32);
        let fraction: u128 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| bad())?
        };
        nanos = whole
            .checked_mul(unit)
            .and_then(|w| w.checked_add(fraction * unit / scale))
            .and_then(|n| n.checked_add(nanos))
            .ok_or_else(bad)?;
    }
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| bad())
}

/// Formats a duration the way traces write them (`1h2m3.5s`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || frac > 0 || out.is_empty() {
        if frac == 0 {
            out.push_str(&format!("{s}s"));
        } else {
            let frac = format!("{frac:03}");
            out.push_str(&format!("{s}.{}s", frac.trim_end_matches('0')));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_written() {
        #[rustfmt::skip]
        let cases: &[(&str, Option<Duration>)] = &[
            ("0s", Some(Duration::ZERO)),
            ("500ms", Some(Duration::from_millis(500))),
            ("12.5s", Some(Duration::from_millis(12_500))),
            ("0.1s", Some(Duration::from_millis(100))),
            (".5s", Some(Duration::from_millis(500))),
            ("10m", Some(Duration::from_secs(600))),
            ("2h", Some(Duration::from_secs(7200))),
            ("1m30s", Some(Duration::from_secs(90))),
            ("1h0m1.25s", Some(Duration::from_millis(3_601_250))),
            ("1.5m", Some(Duration::from_secs(90))),
            ("", None),
            ("10", None),
            ("s", None),
            ("10x", None),
            ("1.2.3s", None),
            ("1d", None),
            ("-1s", None),
            ("1.0000000001s", None),
            ("99999999999999999999h", None),
        ];
        for (text, want) in cases {
            let got = duration(text).ok();
            assert_eq!(got, *want, "{text:?}");
            if let Some(d) = want {
                // The formatter writes what the parser reads back.
                assert_eq!(duration(&format_duration(*d)).ok(), Some(*d), "{text:?}");
            }
        }
        assert_eq!(
            format_duration(Duration::from_millis(3_601_666)),
            "1h1.666s"
        );
        assert_eq!(format_duration(Duration::from_secs(330)), "5m30s");
    }
}
