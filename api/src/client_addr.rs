//! The client address of a request, for the per-address login limits.
//!
//! Behind an ingress controller or the dashboard, every request comes from the
//! proxy's address, so limiting failed logins by peer address would block all
//! users together. When the peer is one of the configured trusted proxies, the
//! client is the address the proxies recorded in `X-Forwarded-For`: walking the
//! list from the right, the first hop that is not itself a trusted proxy. A peer
//! that is not trusted is the client, whatever headers it sends, so nobody can
//! dodge the limits by inventing `X-Forwarded-For` values.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

/// The networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A network given as `address/prefix` or as a bare address (one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet(pub IpNet);

impl FromStr for ProxyNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let net = s
            .parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| {
                format!("`{s}` is neither an address nor a network (e.g. 10.244.0.0/16)")
            })?;
        Ok(ProxyNet(ipv4_if_mapped(net).trunc()))
    }
}

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 network it
/// maps, since addresses are compared in their canonical (IPv4) form.
fn ipv4_if_mapped(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

/// One `X-Forwarded-For` hop: an address, possibly bracketed (`[::1]`) or with a
/// port (`1.2.3.4:80`, `[::1]:80`). `None` for anything else (`unknown`,
/// obfuscated identifiers, bytes that are not UTF-8).
fn hop_address(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok()?.trim();
    let unbracketed = hop
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(hop);
    unbracketed
        .parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

impl TrustedProxies {
    /// Trusts `nets`.
    pub fn new(nets: impl IntoIterator<Item = ProxyNet>) -> Self {
        Self(nets.into_iter().map(|n| n.0).collect())
    }

    /// True when `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`, given the request's `X-Forwarded-For` header
    /// values (raw bytes, so that one bad hop spoils only itself) in the order
    /// they came. An unreadable hop ends the walk: the last trusted hop before it
    /// is taken as the client.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    ) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops: Vec<&[u8]> = forwarded_for
            .into_iter()
            .flat_map(|value| value.split(|b| *b == b','))
            .collect();
        for hop in hops.into_iter().rev() {
            let Some(ip) = hop_address(hop) else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse::<ProxyNet>().unwrap()))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            p.client_ip(ip("203.0.113.9"), [&b"198.51.100.1"[..]]),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::default().client_ip(ip("127.0.0.1"), [&b"198.51.100.1"[..]]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let p = proxies(&["10.0.0.0/8", "127.0.0.1"]);
        // The client tried to pose as 1.1.1.1; the ingress (10.1.2.3) appended the
        // real address, and the dashboard (127.0.0.1) appended the ingress.
        let chain = [&b"1.1.1.1, 198.51.100.7"[..], b"10.1.2.3"];
        assert_eq!(p.client_ip(ip("127.0.0.1"), chain), ip("198.51.100.7"));
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_read() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            p.client_ip(ip("::ffff:10.0.0.5"), [&b"198.51.100.7:4711"[..]]),
            ip("198.51.100.7")
        );
        assert_eq!(
            p.client_ip(ip("10.0.0.5"), [&b"[2001:db8::1]:443"[..]]),
            ip("2001:db8::1")
        );
        assert_eq!(
            p.client_ip(ip("10.0.0.5"), [&b"[2001:db8::2]"[..]]),
            ip("2001:db8::2")
        );
    }

    #[test]
    fn an_unreadable_hop_stops_at_the_last_trusted_one() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            p.client_ip(ip("10.0.0.5"), [&b"198.51.100.7, unknown, 10.9.9.9"[..]]),
            ip("10.9.9.9")
        );
        // A hop that is not UTF-8 spoils only itself, not the hops after it.
        assert_eq!(
            p.client_ip(
                ip("10.0.0.5"),
                [&b"\xff\xfe, 198.51.100.7"[..], b"10.1.1.1"]
            ),
            ip("198.51.100.7")
        );
        // No header at all: the proxy itself.
        assert_eq!(
            p.client_ip(ip("10.0.0.5"), std::iter::empty()),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn networks_parse_from_cidr_or_bare_addresses() {
        assert!(proxies(&["10.244.0.0/16"]).trusts(ip("10.244.3.4")));
        assert!(!proxies(&["10.244.0.0/16"]).trusts(ip("10.245.0.1")));
        assert!(proxies(&["10.244.1.1/16"]).trusts(ip("10.244.200.1")));
        assert!(proxies(&["::1"]).trusts(ip("::1")));
        // An IPv4-mapped network matches the IPv4 addresses it maps.
        assert!(proxies(&["::ffff:10.0.0.0/104"]).trusts(ip("10.1.2.3")));
        assert!(proxies(&["::ffff:10.0.0.0/104"]).trusts(ip("::ffff:10.1.2.3")));
        assert!("10.0.0.0/33".parse::<ProxyNet>().is_err());
        assert!("proxy".parse::<ProxyNet>().is_err());
    }
}
