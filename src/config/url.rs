//! Base URLs: the one check every URL setting goes through (`upstream.url`,
//! `invalidation.flags_url`, and any added later).
//!
//! `http::Uri` alone is too lenient for a setting: it takes any URI characters after the
//! port colon and only [`Authority::port_u16`](http::uri::Authority::port_u16) notices,
//! by returning `None` (so `http://127.0.0.1:notaport/` and `http://h:65536/` parse and
//! fail only at the first request), and it accepts userinfo, an empty port, and a
//! fragment. So the authority is checked here, by hand, before anything is started:
//!
//! - scheme `http` or `https`, in any case (RFC 3986 schemes are case-insensitive);
//! - a host: an IPv4 address, a bracketed IPv6 address (no zone), or a DNS name (labels
//!   of 1–63 letters, digits, `-` and `_`, not starting or ending with `-`; 253 bytes at
//!   most; no empty label, but one trailing dot is allowed: a fully qualified name, as
//!   Kubernetes users write to skip the resolver's search domains); a host of only
//!   digits and dots must be an IPv4 address;
//! - an optional port: ASCII digits, 1–65535 (`:` with nothing after it is refused);
//! - no userinfo (`user:pass@`): evalgate sends no credentials from the URL, and the URL
//!   is logged at start-up;
//! - an optional path prefix, which requests go under;
//! - no query and no fragment: requests are built by appending a path and query, so
//!   neither has a meaning in a base URL.

use std::net::{Ipv4Addr, Ipv6Addr};

use http::Uri;

use super::ConfigError;

/// Checks the base URL set under `key`; returns it without a trailing slash.
pub fn base_url(key: &'static str, url: &str) -> Result<String, ConfigError> {
    let bad = |problem: &str| ConfigError::Invalid {
        key,
        problem: format!("`{url}` {problem}"),
    };
    let rest = strip_prefix_ignore_case(url, "http://")
        .or_else(|| strip_prefix_ignore_case(url, "https://"))
        .ok_or_else(|| bad("must start with http:// or https://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if tail.contains('?') {
        return Err(bad("must not have a query"));
    }
    if tail.contains('#') {
        return Err(bad("must not have a fragment"));
    }
    if authority.contains('@') {
        return Err(bad("must not contain credentials (`user@`)"));
    }
    let (host, port) = split_host_port(authority).map_err(bad)?;
    check_host(host).map_err(|p| bad(&p))?;
    if let Some(port) = port {
        check_port(port).map_err(|p| bad(&p))?;
    }
    // The path (and anything the checks above let through) must also be a URI that the
    // upstream client accepts.
    url.parse::<Uri>()
        .map_err(|e| bad(&format!("is not a URL ({e})")))?;
    Ok(url.trim_end_matches('/').to_string())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Splits `host[:port]`, where the host may be a bracketed IPv6 address.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    if authority.is_empty() {
        return Err("has no host");
    }
    if authority.starts_with('[') {
        let close = authority
            .find(']')
            .ok_or("has an IPv6 address without its closing `]`")?;
        let (host, after) = authority.split_at(close + 1);
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err("has text after the IPv6 address that is not a port"),
            },
        };
    }
    Ok(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("has no host".into());
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        return inner
            .parse::<Ipv6Addr>()
            .map(drop)
            .map_err(|_| format!("has `{host}`, which is not an IPv6 address"));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host
            .parse::<Ipv4Addr>()
            .map(drop)
            .map_err(|_| format!("has `{host}`, which is not an IPv4 address"));
    }
    let not_dns = || format!("has `{host}`, which is not a host name");
    // A fully qualified name may end in one dot, which is not a label.
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() > 253 {
        return Err(not_dns());
    }
    for label in name.split('.') {
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(not_dns());
        }
    }
    Ok(())
}

fn check_port(port: &str) -> Result<(), String> {
    let value = if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        port.parse::<u32>().ok()
    } else {
        None
    };
    match value {
        Some(1..=65535) => Ok(()),
        _ => Err(format!(
            "has port `{port}`; a port is a number from 1 to 65535"
        )),
    }
}
