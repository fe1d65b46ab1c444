//! The client's address behind trusted reverse proxies (`http.trusted_proxies`).
//!
//! With no trusted proxy (the default) the client is the TCP peer and `X-Forwarded-For` is
//! ignored: anyone can send it. When the peer is a trusted proxy, the client is the right-most
//! `X-Forwarded-For` entry that is not itself a trusted proxy. Each proxy appends the address it
//! received the request from, so the entries right of the first untrusted one were written by
//! proxies we trust, and everything left of it was written by someone we do not (the client can
//! put any address there). An unreadable entry or no header at all gives the peer: a value that
//! cannot be read is never trusted.
//!
//! `Forwarded: for=` (RFC 7239) is not read; the balancers tandem is documented with (nginx)
//! send `X-Forwarded-For`.

use std::net::{IpAddr, Ipv6Addr, SocketAddrV4};

use axum::http::{HeaderMap, HeaderName};

use crate::config::IpNetwork;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The address the failed-authentication throttle and its sync-log entries use for a request
/// that came from `peer`.
pub(crate) fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNetwork]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    // Header lines in order, each a comma-separated list (RFC 9110 5.3); a line that is not
    // visible ASCII is one unreadable entry.
    let mut entries = Vec::new();
    for line in headers.get_all(&X_FORWARDED_FOR) {
        match line.to_str() {
            Ok(text) => entries.extend(
                text.split(',')
                    .map(str::trim)
                    .filter(|entry| !entry.is_empty())
                    .map(Some),
            ),
            Err(_) => entries.push(None),
        }
    }
    for entry in entries.into_iter().rev() {
        match entry.and_then(parse_entry) {
            Some(address) if is_trusted(address, trusted) => continue,
            Some(address) => return address,
            None => return peer,
        }
    }
    peer
}

fn is_trusted(address: IpAddr, trusted: &[IpNetwork]) -> bool {
    trusted.iter().any(|network| network.contains(address))
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]` or
/// `[2001:db8::1]:5678`; anything else (`unknown`, obfuscated names, zone ids) is `None`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let address = if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !after.is_empty() {
            after.strip_prefix(':')?.parse::<u16>().ok()?;
        }
        IpAddr::V6(inside.parse::<Ipv6Addr>().ok()?)
    } else if let Ok(address) = entry.parse::<IpAddr>() {
        address
    } else {
        IpAddr::V4(*entry.parse::<SocketAddrV4>().ok()?.ip())
    };
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn networks(list: &[&str]) -> Vec<IpNetwork> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(&X_FORWARDED_FOR, HeaderValue::from_str(line).unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const PROXY: &str = "10.0.0.5";

    fn resolve(lines: &[&str], trusted: &[&str]) -> IpAddr {
        client_address(ip(PROXY), &headers(lines), &networks(trusted))
    }

    #[test]
    fn with_no_trusted_proxy_the_header_is_ignored() {
        assert_eq!(resolve(&["203.0.113.7"], &[]), ip(PROXY));
    }

    #[test]
    fn a_peer_that_is_not_trusted_is_the_client_whatever_it_sends() {
        assert_eq!(resolve(&["203.0.113.7"], &["10.0.1.0/24"]), ip(PROXY));
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_address_it_appended() {
        assert_eq!(resolve(&["203.0.113.7"], &["10.0.0.5"]), ip("203.0.113.7"));
    }

    #[test]
    fn spoofed_entries_left_of_the_one_the_proxy_appended_are_ignored() {
        assert_eq!(
            resolve(&["1.1.1.1, 10.0.0.9,203.0.113.7"], &["10.0.0.0/8"]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_through_to_the_first_untrusted_entry() {
        assert_eq!(
            resolve(
                &["198.51.100.1, 203.0.113.7, 172.16.0.3", "10.0.0.4"],
                &["10.0.0.0/8", "172.16.0.0/12"]
            ),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn several_header_lines_are_one_list_in_order() {
        assert_eq!(
            resolve(&["198.51.100.1", "203.0.113.7"], &["10.0.0.0/8"]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn ipv6_clients_and_proxies_are_understood() {
        let client = client_address(
            ip("fd00::5"),
            &headers(&["2001:db8::7, fd00::4"]),
            &networks(&["fd00::/8"]),
        );
        assert_eq!(client, ip("2001:db8::7"));
    }

    #[test]
    fn brackets_and_ports_are_accepted() {
        for (entry, expected) in [
            ("[2001:db8::7]:1234", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("203.0.113.7:5678", "203.0.113.7"),
            ("  203.0.113.7  ", "203.0.113.7"),
        ] {
            assert_eq!(resolve(&[entry], &[PROXY]), ip(expected), "{entry}");
        }
    }

    #[test]
    fn an_ipv4_mapped_peer_or_entry_counts_as_its_ipv4_address() {
        let client = client_address(
            ip("::ffff:10.0.0.5"),
            &headers(&["::ffff:203.0.113.7"]),
            &networks(&["10.0.0.0/8"]),
        );
        assert_eq!(client, ip("203.0.113.7"));
    }

    #[test]
    fn garbage_where_the_client_should_be_gives_the_peer() {
        for entry in [
            "unknown",
            "_hidden",
            "203.0.113.7:99999",
            "[2001:db8::7",
            "[2001:db8::7]x",
            "[203.0.113.7]",
            "fe80::1%eth0",
            "203.0.113.7 198.51.100.1",
            "999.1.1.1",
        ] {
            assert_eq!(resolve(&[entry], &[PROXY]), ip(PROXY), "{entry}");
        }
    }

    #[test]
    fn garbage_left_of_the_client_is_never_reached() {
        assert_eq!(
            resolve(&["not an address, 203.0.113.7"], &[PROXY]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn a_line_that_is_not_ascii_gives_the_peer_when_it_is_reached() {
        let mut map = HeaderMap::new();
        map.append(
            &X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"203.0.113.7\xff").unwrap(),
        );
        let trusted = networks(&[PROXY]);
        assert_eq!(client_address(ip(PROXY), &map, &trusted), ip(PROXY));
        map.append(&X_FORWARDED_FOR, HeaderValue::from_static("198.51.100.1"));
        assert_eq!(
            client_address(ip(PROXY), &map, &trusted),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn no_header_empty_entries_or_only_trusted_entries_give_the_peer() {
        assert_eq!(resolve(&[], &[PROXY]), ip(PROXY));
        assert_eq!(resolve(&[" , ,"], &[PROXY]), ip(PROXY));
        assert_eq!(resolve(&["10.0.0.1, 10.0.0.2"], &["10.0.0.0/8"]), ip(PROXY));
        assert_eq!(
            resolve(&["203.0.113.7,,"], &[PROXY]),
            ip("203.0.113.7"),
            "empty list elements are skipped"
        );
    }
}
