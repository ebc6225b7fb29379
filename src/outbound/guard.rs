//! The outbound guard: webhooks, SMS and email go only to public addresses, unless the
//! operator allowlists a host.
//!
//! A check that resolves a name and then lets the HTTP client resolve it again is open to
//! DNS rebinding (the second answer can be 127.0.0.1). So the guard *is* the resolver: it
//! is plugged into awc's connector ([`client`]), resolves each name once, refuses the
//! connection if any answer is internal, and hands the connector exactly the addresses it
//! checked. IP literals never reach a resolver, so [`check_target`] checks them (with the
//! scheme) before a request is sent. Redirects are off, so a public server cannot send the
//! client on to an internal one.

use actix_tls::connect::{Resolve, Resolver};
use futures_util::future::LocalBoxFuture;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

/// Why a target is refused or could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// The target is not allowed; retrying cannot help.
    #[error("refused {host} ({ip}): internal or special-purpose address not in the webhook allowlist")]
    Internal { host: String, ip: IpAddr },
    #[error("invalid url {0}")]
    InvalidUrl(String),
    #[error("refused scheme {0:?}")]
    Scheme(String),
    /// DNS failed: may work later.
    #[error("cannot resolve {host}: {message}")]
    Lookup { host: String, message: String },
}

impl GuardError {
    /// True unless the failure was DNS (which may recover).
    pub fn is_permanent(&self) -> bool {
        !matches!(self, GuardError::Lookup { .. })
    }
}

/// How names become addresses: the system resolver in production, a fake in tests.
pub type Lookup = Rc<dyn Fn(String, u16) -> LocalBoxFuture<'static, std::io::Result<Vec<SocketAddr>>>>;

/// The system resolver (tokio's, i.e. getaddrinfo).
pub fn system_lookup() -> Lookup {
    Rc::new(|host: String, port: u16| {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), port)).await?.collect()) })
    })
}

/// The resolver plugged into the HTTP client.
pub struct Guard {
    allowlist: Vec<String>,
    lookup: Lookup,
    /// Refuse internal addresses (all but a client for configured destinations).
    checks: bool,
}

impl Guard {
    pub fn new(allowlist: Vec<String>, lookup: Lookup) -> Self {
        Self {
            allowlist,
            lookup,
            checks: true,
        }
    }

    /// A resolver that refuses nothing: only for the destinations the engine's own
    /// configuration names ([`crate::outbound::send::DeliveryPolicy::trusts`]).
    pub fn trusting(lookup: Lookup) -> Self {
        Self {
            allowlist: Vec::new(),
            lookup,
            checks: false,
        }
    }

    /// Resolves `host` once and returns its addresses if every one may be reached.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, GuardError> {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let addrs = (self.lookup)(host.clone(), port)
            .await
            .map_err(|e| GuardError::Lookup {
                host: host.clone(),
                message: e.to_string(),
            })?;
        if !self.checks || allowlisted(&self.allowlist, &host) {
            return Ok(addrs);
        }
        for addr in &addrs {
            let ip = addr.ip();
            if is_internal(ip) && !ip_allowlisted(&self.allowlist, ip) {
                tracing::warn!(host = %host, %ip, "outbound request refused: internal address");
                return Err(GuardError::Internal { host, ip });
            }
        }
        Ok(addrs)
    }
}

impl Resolve for Guard {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn std::error::Error>>> {
        Box::pin(async move {
            self.resolve(host, port)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)
        })
    }
}

/// An HTTP client that connects only through `guard`, with no redirects.
pub fn client(timeout: Duration, guard: Guard) -> awc::Client {
    let tcp = actix_tls::connect::Connector::new(Resolver::custom(guard)).service();
    awc::Client::builder()
        .timeout(timeout)
        .disable_redirects()
        .connector(awc::Connector::new().connector(tcp).timeout(timeout))
        .finish()
}

/// The guard's refusal inside a send error, if that is why the send failed.
pub fn refusal(error: &awc::error::SendRequestError) -> Option<&GuardError> {
    match error {
        awc::error::SendRequestError::Connect(awc::error::ConnectError::Resolver(e)) => e.downcast_ref::<GuardError>(),
        _ => None,
    }
}

/// Checks what can be checked before connecting: http(s), a host, and an IP-literal host
/// against the ranges (names are checked by the resolver at connect time).
pub fn check_target(url: &str, allowlist: &[String]) -> Result<(), GuardError> {
    let parsed =
        url::Url::parse(url).map_err(|e| GuardError::InvalidUrl(format!("{:?}: {e}", crate::redact::url(url))))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(GuardError::Scheme(parsed.scheme().to_owned()));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| GuardError::InvalidUrl(format!("{:?} has no host", crate::redact::url(url))))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if allowlisted(allowlist, &host) {
        return Ok(());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        if is_internal(ip) && !ip_allowlisted(allowlist, ip) {
            return Err(GuardError::Internal { host, ip });
        }
    }
    Ok(())
}

fn allowlisted(allowlist: &[String], host: &str) -> bool {
    allowlist.iter().any(|a| a.eq_ignore_ascii_case(host))
}

fn ip_allowlisted(allowlist: &[String], ip: IpAddr) -> bool {
    allowlist
        .iter()
        .any(|a| a.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok() == Some(ip))
}

/// True for every address a webhook has no business reaching: the IANA IPv4 and IPv6
/// special-purpose address registries (private, loopback, link-local, shared, benchmarking,
/// documentation, reserved, multicast, broadcast, protocol assignments), and IPv6 forms
/// that embed an IPv4 address (mapped, compatible, NAT64, 6to4) when the embedded one is.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    const RANGES: &[([u8; 4], u32)] = &[
        ([0, 0, 0, 0], 8),       // "this network"
        ([10, 0, 0, 0], 8),      // private
        ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local (cloud metadata)
        ([172, 16, 0, 0], 12),   // private
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
        ([192, 31, 196, 0], 24), // AS112-v4
        ([192, 52, 193, 0], 24), // AMT
        ([192, 88, 99, 0], 24),  // deprecated 6to4 relay anycast
        ([192, 168, 0, 0], 16),  // private
        ([192, 175, 48, 0], 24), // direct delegation AS112
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
        ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, and 255.255.255.255 broadcast
    ];
    RANGES.iter().any(|(net, len)| in_v4(ip, *net, *len))
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u32) -> bool {
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
    (u128::from(ip) & mask) == (u128::from(net) & mask)
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    // ::ffff:a.b.c.d (mapped): the IPv4 address is what is reached.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_internal_v4(v4);
    }
    // ::/96: unspecified, loopback and the deprecated IPv4-compatible ::a.b.c.d.
    if bits >> 32 == 0 {
        return true;
    }
    // 2002::/16 6to4: the embedded IPv4 address (bits 16..48) decides.
    if in_v6(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        let v4 = Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32);
        return is_internal_v4(v4);
    }
    let net = |s: [u16; 8], len| in_v6(ip, Ipv6Addr::from(s), len);
    net([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96)          // NAT64 well-known prefix
        || net([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48)   // NAT64 local use
        || net([0x100, 0, 0, 0, 0, 0, 0, 0], 64)       // discard-only
        || net([0x2001, 0, 0, 0, 0, 0, 0, 0], 23)      // IETF protocol assignments (Teredo, ORCHID, benchmarking...)
        || net([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32)  // documentation
        || net([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48) // AS112
        || net([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20)      // documentation
        || net([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16)      // SRv6 SIDs
        || net([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7)       // unique local
        || net([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10)      // link-local
        || net([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10)      // deprecated site-local
        || net([0xff00, 0, 0, 0, 0, 0, 0, 0], 8) // multicast
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_purpose_ranges_are_internal() {
        for ip in [
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.0.170",
            "192.0.2.1",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.99.1",
            "192.168.1.1",
            "192.175.48.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::808:808",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:2::1",
            "2001:10::1",
            "2001:1ff::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2620:4f:8000::1",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip} should be internal");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.1.1",
            "192.0.3.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
            "2002:808:808::1",
            "2001:200::1",
            "2001:4860:4860::8888",
            "64:ff9c::1",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip} should be public");
        }
    }

    #[test]
    fn targets_are_checked_against_the_allowlist() {
        assert!(check_target("http://127.0.0.1:9/x", &[]).unwrap_err().is_permanent());
        assert!(check_target("http://[::1]:9/x", &[]).unwrap_err().is_permanent());
        assert!(check_target("http://[::ffff:169.254.169.254]/x", &[]).is_err());
        assert!(check_target("http://169.254.169.254/latest/meta-data", &[]).is_err());
        assert!(matches!(
            check_target("ftp://example.com/x", &[]),
            Err(GuardError::Scheme(_))
        ));
        assert!(check_target("http://127.0.0.1:9/x", &["127.0.0.1".into()]).is_ok());
        assert!(check_target("http://93.184.215.14/x", &[]).is_ok());
        // Names are the resolver's to check, at connect time.
        assert!(check_target("http://localhost:9/x", &[]).is_ok());
    }

    fn fake(answer: &'static str) -> Lookup {
        Rc::new(move |_host, port| Box::pin(async move { Ok(vec![SocketAddr::new(answer.parse().unwrap(), port)]) }))
    }

    #[actix_rt::test]
    async fn the_resolver_refuses_names_that_resolve_inside() {
        let guard = Guard::new(vec![], fake("10.0.0.5"));
        assert!(matches!(
            guard.resolve("rebind.example", 80).await,
            Err(GuardError::Internal { .. })
        ));
        let guard = Guard::new(vec!["rebind.example".into()], fake("10.0.0.5"));
        assert_eq!(
            guard.resolve("rebind.example", 80).await.unwrap(),
            ["10.0.0.5:80".parse().unwrap()]
        );
        let guard = Guard::new(vec!["10.0.0.5".into()], fake("10.0.0.5"));
        assert!(guard.resolve("rebind.example", 80).await.is_ok());
        let guard = Guard::new(vec![], fake("93.184.215.14"));
        assert!(guard.resolve("public.example", 443).await.is_ok());
    }
}
