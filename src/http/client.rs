//! Who the client is, by network address: the TCP peer, or — when the peer is one of the
//! operator's trusted proxies (`server.trusted_proxies`) — the nearest address in
//! `X-Forwarded-For` that is not a trusted proxy. The authentication throttle counts by it.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// An address block: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrBlock {
    base: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for AddrBlock {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = text.split_once('/').map_or((text, None), |(a, p)| (a, Some(p)));
        let base: IpAddr = addr.trim().parse().map_err(|_| format!("{text:?} is not an IP address or block"))?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { base, prefix })
    }
}

impl AddrBlock {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let same = |a: u128, b: u128, bits: u32| {
            let shift = bits - u32::from(self.prefix);
            shift >= bits || (a >> shift) == (b >> shift)
        };
        match (self.base, ip) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => same(u32::from(base).into(), u32::from(ip).into(), 32),
            (IpAddr::V6(base), IpAddr::V6(ip)) => same(u128::from(base), u128::from(ip), 128),
            _ => false,
        }
    }
}

/// The client's address: `peer`, unless `peer` is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not a trusted proxy (what an untrusted client
/// wrote to the left of it is ignored: anyone can forge those).
///
/// IPv4 addresses mapped into IPv6 (`::ffff:a.b.c.d`, what a dual-stack listener on `[::]`
/// sees) are taken as the IPv4 addresses they are.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[AddrBlock]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|block| block.contains(ip));
    let peer = peer.to_canonical();
    if !is_trusted(peer) {
        return peer;
    }
    let mut nearest = peer;
    let values = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
    let hops: Vec<&str> = values.flat_map(|v| v.split(',')).collect();
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) if is_trusted(ip) => nearest = ip,
            Some(ip) => return ip,
            // A garbled entry (or `unknown`): nothing to its left can be believed.
            None => break,
        }
    }
    nearest
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`203.0.113.9:51234`,
/// `[2001:db8::1]:443`) or in brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(ip.to_canonical())
}

/// The throttle's bucket for an address: IPv4 whole; IPv6 by its /64 (the address with its
/// low 64 bits cleared), which one subscriber usually holds whole (per /128, rotating
/// addresses would escape the throttle).
pub fn throttle_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(list: &[&str]) -> Vec<AddrBlock> {
        list.iter().map(|b| b.parse().unwrap()).collect()
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn blocks_parse_and_contain() {
        let net: AddrBlock = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        assert!("0.0.0.0/0".parse::<AddrBlock>().unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!("fd00::/8".parse::<AddrBlock>().unwrap().contains("fd12::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "host", "::/129", "1.2.3.4/x"] {
            assert!(bad.parse::<AddrBlock>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = blocks(&["10.0.0.0/8"]);
        let client = |peer: &str, header: &str| client_address(peer.parse().unwrap(), &forwarded(header), &trusted);
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(client("203.0.113.9", "1.1.1.1"), "203.0.113.9".parse::<IpAddr>().unwrap());
        // Behind the proxy: the nearest untrusted hop; a forged entry to its left is ignored.
        assert_eq!(client("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.9"), "198.51.100.7".parse::<IpAddr>().unwrap());
        // Nothing usable: the proxy itself.
        assert_eq!(client("10.0.0.2", "garbage"), "10.0.0.2".parse::<IpAddr>().unwrap());
        // Ports and brackets, as some proxies write them.
        assert_eq!(client("10.0.0.2", "203.0.113.9:51234"), "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(client("10.0.0.2", "[2001:db8::1]:443"), "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(client("10.0.0.2", "[2001:db8::2]"), "2001:db8::2".parse::<IpAddr>().unwrap());
        // A dual-stack listener sees IPv4 peers as mapped IPv6 addresses.
        assert_eq!(client("::ffff:10.0.0.2", "198.51.100.7"), "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(client("::ffff:203.0.113.9", ""), "203.0.113.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a = throttle_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = throttle_key("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, throttle_key("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(a, "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(throttle_key(v4), v4);
        assert_eq!(throttle_key("::ffff:192.0.2.1".parse().unwrap()), v4, "mapped IPv4 is IPv4");
    }
}
