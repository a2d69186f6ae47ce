//! Readers for the typed condition values of IAM's condition operators
//! ("IAM JSON policy elements: Condition operators"): numbers ("an integer or
//! decimal value"), dates ("one of the W3C implementations of the ISO 8601
//! date formats or in epoch (UNIX) time") and IP ranges ("the standard CIDR
//! format ... If you specify an IP address without the associated routing
//! prefix, IAM uses the default prefix value of /32" — /128 for IPv6).

use std::net::IpAddr;

/// An integer or decimal, optionally signed: `10`, `-3`, `2.5`, `.5`.
/// Exponents, `NaN` and `inf` are not numbers here.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let valid = all_digits(whole)
        && fraction.is_none_or(all_digits)
        && !(whole.is_empty() && fraction.is_none_or(str::is_empty));
    if !valid {
        return None;
    }
    text.parse::<f64>().ok()
}

/// A date as milliseconds since the Unix epoch.
///
/// Accepted: epoch seconds (`1700000000`, `1700000000.25`) and the W3C ISO
/// 8601 profile from `YYYY-MM` down to fractional seconds, with `Z` or a
/// `±hh:mm` offset (a time without one is read as UTC). A bare `YYYY` is
/// read as epoch seconds, since the two forms cannot be told apart.
pub(crate) fn parse_date_millis(text: &str) -> Option<i64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_epoch_seconds(text);
    }
    parse_iso8601(text)
}

fn parse_epoch_seconds(text: &str) -> Option<i64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    if whole.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let millis = fraction_millis(fraction)?;
    seconds.checked_mul(1000)?.checked_add(millis)
}

/// The first three digits of a decimal fraction, as milliseconds.
fn fraction_millis(fraction: &str) -> Option<i64> {
    let mut millis = 0;
    let mut scale = 100;
    for b in fraction.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        millis += i64::from(b - b'0') * scale;
        scale /= 10;
    }
    Some(millis)
}

fn parse_iso8601(text: &str) -> Option<i64> {
    let (date, time) = match text.find(['T', 't']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let year: i64 = fixed_digits(parts.next()?, 4)?;
    let month: i64 = match parts.next() {
        Some(month) => fixed_digits(month, 2)?,
        None => return None, // bare YYYY is taken as epoch seconds above
    };
    let day: i64 = match parts.next() {
        Some(day) => fixed_digits(day, 2)?,
        None => 1,
    };
    if parts.next().is_some() || !(1..=12).contains(&month) {
        return None;
    }
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut millis = days_from_civil(year, month, day).checked_mul(86_400_000)?;
    let Some(time) = time else {
        return Some(millis);
    };
    // Split off the zone designator.
    let (clock, offset_minutes) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (clock, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = zone[1..].split_once(':')?;
        let hours: i64 = fixed_digits(hours, 2)?;
        let minutes: i64 = fixed_digits(minutes, 2)?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        (clock, sign * (hours * 60 + minutes))
    } else {
        (time, 0)
    };
    let mut fields = clock.split(':');
    let hour: i64 = fixed_digits(fields.next()?, 2)?;
    let minute: i64 = fixed_digits(fields.next()?, 2)?;
    let (second, fraction) = match fields.next() {
        Some(seconds) => {
            let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
            if seconds.contains('.') && fraction.is_empty() {
                return None;
            }
            (fixed_digits(whole, 2)?, fraction_millis(fraction)?)
        }
        None => (0, 0),
    };
    if fields.next().is_some() || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    millis += ((hour * 60 + minute - offset_minutes) * 60 + second) * 1000 + fraction;
    Some(millis)
}

fn fixed_digits(text: &str, width: usize) -> Option<i64> {
    if text.len() != width || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12; // March = 0
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `aws:CurrentTime` as a string: `YYYY-MM-DDThh:mm:ssZ`.
pub(crate) fn format_iso8601(epoch_seconds: i64) -> String {
    let days = epoch_seconds.div_euclid(86_400);
    let seconds_of_day = epoch_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    )
}

/// An IP range in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub(crate) fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) => {
                prefix.parse::<u8>().ok().filter(|p| *p <= max)?
            }
            Some(_) => return None,
            None => max,
        };
        Some(Cidr { network, prefix })
    }

    pub(crate) fn contains(&self, address: IpAddr) -> bool {
        match (self.network, canonical_ip(address)) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (what a dual-stack socket reports for an IPv4
/// peer) compare as the IPv4 address.
pub(crate) fn canonical_ip(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_number("10"), Some(10.0));
        assert_eq!(parse_number("-2.5"), Some(-2.5));
        assert_eq!(parse_number("+.5"), Some(0.5));
        assert_eq!(parse_number("3."), Some(3.0));
        for bad in ["", "-", ".", "1e3", "NaN", "inf", "1.2.3", " 1", "0x10"] {
            assert_eq!(parse_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dates_in_every_documented_form() {
        let day = 19_723 * 86_400_000; // 2024-01-01
        assert_eq!(parse_date_millis("2024-01-01"), Some(day));
        assert_eq!(parse_date_millis("2024-01"), Some(day));
        assert_eq!(parse_date_millis("2024-01-01T00:00Z"), Some(day));
        assert_eq!(parse_date_millis("2024-01-01T00:00:00Z"), Some(day));
        assert_eq!(
            parse_date_millis("2024-01-01T00:00:00.250Z"),
            Some(day + 250)
        );
        assert_eq!(
            parse_date_millis("2024-01-01T01:00:00+01:00"),
            Some(day),
            "offsets shift to UTC"
        );
        assert_eq!(parse_date_millis("2023-12-31T23:00:00-01:00"), Some(day));
        assert_eq!(parse_date_millis("1704067200"), Some(day));
        assert_eq!(parse_date_millis("1704067200.5"), Some(day + 500));
        assert_eq!(parse_date_millis("2024-02-29"), Some(day + 59 * 86_400_000));
        for bad in [
            "",
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "2024-01-01T25:00Z",
            "yesterday",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+1:00",
            "1.2.3",
        ] {
            assert_eq!(parse_date_millis(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_current_time() {
        assert_eq!(format_iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_iso8601(1_704_067_199), "2023-12-31T23:59:59Z");
        assert_eq!(format_iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_iso8601(-1), "1969-12-31T23:59:59Z");
        for seconds in [0, 1, 86_399, 951_782_400, 1_704_067_200, 4_102_444_800] {
            assert_eq!(
                parse_date_millis(&format_iso8601(seconds)),
                Some(seconds * 1000)
            );
        }
    }

    #[test]
    fn cidr_blocks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let block = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(block.contains(ip("203.0.113.7")));
        assert!(!block.contains(ip("203.0.114.7")));
        assert!(block.contains(ip("::ffff:203.0.113.9")), "IPv4-mapped");
        let single = Cidr::parse("123.45.167.89").unwrap();
        assert!(single.contains(ip("123.45.167.89")));
        assert!(!single.contains(ip("123.45.167.88")));
        let v6 = Cidr::parse("2001:DB8:1234:5678::/64").unwrap();
        assert!(v6.contains(ip("2001:db8:1234:5678::1")));
        assert!(!v6.contains(ip("2001:db8:1234:5679::1")));
        assert!(!v6.contains(ip("203.0.113.7")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::1")));
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0/8",
            "::/129",
            "x",
            "10.0.0.0/+8",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad:?}");
        }
    }
}
