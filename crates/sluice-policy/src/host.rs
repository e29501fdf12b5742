//! Host names as a client may write them, normalised so that one destination has one
//! spelling: lower case, no trailing dot, IPv6 without brackets, and every numeric
//! IPv4 form (`0x7f000001`, `2130706433`, `127.1`, `0177.0.0.1`) as the address it
//! means. As in the WHATWG URL standard, a host whose last label is a number is an
//! IPv4 address or nothing: `1.2.3.4.5` and `10.0.0.0x1g` are refused, never looked
//! up as names.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A destination host, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name: lower case, no trailing dot, labels of letters, digits, `-`, `_`.
    Name(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the host is empty")]
    Empty,
    #[error("the host is longer than 253 characters")]
    TooLong,
    #[error("the host has a character a host name cannot have")]
    BadCharacter,
    #[error("a label of the host is empty or longer than 63 characters")]
    BadLabel,
    #[error("the host looks like an IPv4 address but is not a valid one")]
    BadIpv4,
    #[error("the bracketed host is not a valid IPv6 address")]
    BadIpv6,
}

impl Host {
    /// Parses the host part of an authority (no port, no userinfo).
    pub fn parse(raw: &str) -> Result<Host, HostError> {
        if let Some(inner) = raw.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(HostError::BadIpv6)?;
            // Zone identifiers (`%eth0`) name a local interface: never a destination.
            let ip: Ipv6Addr = inner.parse().map_err(|_| HostError::BadIpv6)?;
            return Ok(Host::Ip(IpAddr::V6(ip)));
        }
        let host = raw.strip_suffix('.').unwrap_or(raw);
        if host.is_empty() {
            return Err(HostError::Empty);
        }
        if host.len() > 253 {
            return Err(HostError::TooLong);
        }
        if let Ok(ip) = host.parse::<Ipv6Addr>() {
            return Ok(Host::Ip(IpAddr::V6(ip)));
        }
        let host = host.to_ascii_lowercase();
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(HostError::BadCharacter);
        }
        let last = host.rsplit('.').next().unwrap_or_default();
        if looks_numeric(last) {
            return parse_ipv4(&host).map(|ip| Host::Ip(IpAddr::V4(ip)));
        }
        if host.split('.').any(|l| l.is_empty() || l.len() > 63) {
            return Err(HostError::BadLabel);
        }
        Ok(Host::Name(host))
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Name(_) => None,
        }
    }
}

impl fmt::Display for Host {
    /// As it goes in an authority: IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// A label that is a number in one of inet_aton's bases: decimal, `0x` hex, or
/// (leading `0`) octal.
fn looks_numeric(label: &str) -> bool {
    if let Some(hex) = label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"))
    {
        return hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit())
}

fn number(part: &str) -> Option<u64> {
    let (digits, radix) = if let Some(h) = part.strip_prefix("0x") {
        (h, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    if digits.is_empty() {
        // `0x` alone is 0, as inet_aton reads it.
        return (radix == 16).then_some(0);
    }
    if digits.len() > 12 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// inet_aton's forms: `a`, `a.b`, `a.b.c`, `a.b.c.d`; the last part fills the bytes
/// left, each earlier one is a byte.
fn parse_ipv4(host: &str) -> Result<Ipv4Addr, HostError> {
    // On the stack: this runs for every request a forward listener gets.
    let mut nums = [0u64; 4];
    let mut count = 0;
    for part in host.split('.') {
        let slot = nums.get_mut(count).ok_or(HostError::BadIpv4)?;
        *slot = number(part).ok_or(HostError::BadIpv4)?;
        count += 1;
    }
    let (last, leading) = nums[..count].split_last().ok_or(HostError::BadIpv4)?;
    if leading.iter().any(|&n| n > 255) {
        return Err(HostError::BadIpv4);
    }
    let room = 8 * (4 - leading.len() as u32);
    if *last >= 1u64 << room {
        return Err(HostError::BadIpv4);
    }
    let mut value: u64 = 0;
    for (i, &n) in leading.iter().enumerate() {
        value |= n << (24 - 8 * i as u32);
    }
    value |= last;
    Ok(Ipv4Addr::from(value as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(raw: &str) -> IpAddr {
        match Host::parse(raw) {
            Ok(Host::Ip(ip)) => ip,
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn every_numeric_ipv4_form_is_the_address_it_means() {
        for raw in [
            "127.0.0.1",
            "0x7f000001",
            "0X7F000001",
            "2130706433",
            "127.1",
            "127.0.1",
            "0177.0.0.1",
            "0x7f.0.0.1",
            "0x7f.1",
            "127.0.0.1.",
            "017700000001",
        ] {
            assert_eq!(ip(raw), IpAddr::from([127, 0, 0, 1]), "{raw}");
        }
        assert_eq!(ip("169.254.169.254"), IpAddr::from([169, 254, 169, 254]));
        assert_eq!(ip("0xa9fea9fe"), IpAddr::from([169, 254, 169, 254]));
        assert_eq!(ip("0"), IpAddr::from([0, 0, 0, 0]));
    }

    #[test]
    fn a_numeric_last_label_is_an_address_or_an_error() {
        for raw in [
            "1.2.3.4.5",
            "256.0.0.1",
            "127.0.0.256",
            "1.16777216",
            "08.0.0.1",
        ] {
            assert!(Host::parse(raw).is_err(), "{raw}: {:?}", Host::parse(raw));
        }
        // Not a number in any base, so a name.
        assert!(matches!(Host::parse("0x1g"), Ok(Host::Name(_))));
    }

    #[test]
    fn names_are_lower_case_without_the_trailing_dot() {
        assert_eq!(
            Host::parse("API.Example.COM.").unwrap(),
            Host::Name("api.example.com".into())
        );
        assert_eq!(Host::parse("").unwrap_err(), HostError::Empty);
        assert_eq!(Host::parse(".").unwrap_err(), HostError::Empty);
        assert_eq!(Host::parse("a..b").unwrap_err(), HostError::BadLabel);
        assert_eq!(Host::parse("a b").unwrap_err(), HostError::BadCharacter);
        assert_eq!(
            Host::parse("user@host").unwrap_err(),
            HostError::BadCharacter
        );
        assert_eq!(
            Host::parse(&"a".repeat(254)).unwrap_err(),
            HostError::TooLong
        );
    }

    #[test]
    fn ipv6_with_or_without_brackets_and_never_a_zone() {
        assert_eq!(ip("[::1]"), "::1".parse::<IpAddr>().unwrap());
        assert_eq!(
            ip("::ffff:169.254.169.254"),
            "::ffff:a9fe:a9fe".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            Host::parse("[fe80::1%eth0]").unwrap_err(),
            HostError::BadIpv6
        );
        assert_eq!(Host::parse("[::1").unwrap_err(), HostError::BadIpv6);
        assert_eq!(Host::Ip(ip("[::1]")).to_string(), "[::1]");
    }
}
