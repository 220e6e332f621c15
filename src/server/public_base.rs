//! The URL an IdP knows a connection by: the base of every `Location`,
//! `meta.location` and `$ref` the connection answers with.
//!
//! With the connection's `public_url` it is that, whatever the request
//! says. Without it, it is built from the request — and only from what can
//! be believed: the scheme is the listener's (TLS or not) and the host the
//! `Host` header (HTTP/2: `:authority`); `X-Forwarded-Proto` and
//! `X-Forwarded-Host` count only when the peer is one of `trusted_proxies`.
//! A host that is not a plain `host[:port]` (userinfo, a path, spaces,
//! anything else) is refused with 400 rather than reflected.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use http::request::Parts;
use http::{HeaderMap, StatusCode};

use super::rescue::ErrorResponse;
use crate::config::ProxyNet;
use crate::scim::error::ScimError;

/// Whether the request came over TLS; put in every request by the listener.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    pub tls: bool,
}

/// How one connection's public base URL is found.
#[derive(Debug)]
pub struct Origin {
    pub public_url: Option<Arc<str>>,
    pub base_path: String,
    pub trusted_proxies: Arc<[ProxyNet]>,
}

/// The request's public base URL (`scheme://host/base-path`), as the gate
/// found it; handlers extract it.
#[derive(Debug, Clone)]
pub struct PublicBase(pub Arc<str>);

impl Origin {
    pub fn of(&self, request: &Request) -> Result<PublicBase, ScimError> {
        if let Some(url) = &self.public_url {
            return Ok(PublicBase(url.clone()));
        }
        let headers = request.headers();
        let trusted = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|ConnectInfo(peer)| {
                self.trusted_proxies
                    .iter()
                    .any(|net| net.contains(peer.ip()))
            });
        let forwarded = |name: &str| trusted.then(|| first_value(headers, name)).flatten();
        let tls = request
            .extensions()
            .get::<Transport>()
            .is_some_and(|transport| transport.tls);
        let scheme = match forwarded("x-forwarded-proto") {
            Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
            Some(proto) if proto.eq_ignore_ascii_case("http") => "http",
            _ if tls => "https",
            _ => "http",
        };
        let host = forwarded("x-forwarded-host")
            .or_else(|| first_value(headers, http::header::HOST.as_str()))
            .or_else(|| request.uri().authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        if !valid_host(host) {
            return Err(ScimError::new(
                StatusCode::BAD_REQUEST,
                None,
                "the Host header is not a plain host[:port]; the gateway builds resource URLs from it",
            ));
        }
        Ok(PublicBase(Arc::from(format!(
            "{scheme}://{host}{}",
            self.base_path
        ))))
    }
}

/// A header's first comma-separated value (proxies append theirs).
fn first_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then_some(first)
}

/// `host[:port]`: a DNS name (letters, digits, `-`, `.`), an IPv4 address
/// or a bracketed IPv6 one, and an optional port. No userinfo, no path.
fn valid_host(authority: &str) -> bool {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let Some((v6, after)) = rest.split_once(']') else {
                return false;
            };
            if v6.parse::<Ipv6Addr>().is_err() {
                return false;
            }
            match after {
                "" => (None, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (None, Some(port)),
                    None => return false,
                },
            }
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(authority), None),
        },
    };
    let host_ok = host.is_none_or(|host| {
        (1..=253).contains(&host.len())
            && (host.parse::<IpAddr>().is_ok()
                || host.split('.').all(|label| {
                    (1..=63).contains(&label.len())
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }))
    });
    let port_ok = port.is_none_or(|port| {
        (1..=5).contains(&port.len())
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok()
    });
    host_ok && port_ok
}

impl<S: Send + Sync> FromRequestParts<S> for PublicBase {
    type Rejection = ErrorResponse;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The gate puts it in every request of a connection; a handler
        // mounted without the gate is a bug, not the client's fault.
        parts
            .extensions
            .get::<PublicBase>()
            .cloned()
            .ok_or_else(|| ErrorResponse(ScimError::internal("no public base URL was determined")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(public_url: Option<&str>, trusted: &[&str]) -> Origin {
        Origin {
            public_url: public_url.map(Arc::from),
            base_path: "/scim/v2".into(),
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        }
    }

    fn request(peer: [u8; 4], headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().uri("/scim/v2/Users");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut request = builder.body(axum::body::Body::empty()).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((peer, 4711))));
        request
    }

    fn base(origin: &Origin, request: &Request) -> String {
        origin.of(request).unwrap().0.to_string()
    }

    #[test]
    fn hosts_are_plain_host_and_port_only() {
        for good in [
            "scim.example.com",
            "scim.example.com:8443",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[2001:db8::1]",
            "localhost",
        ] {
            assert!(valid_host(good), "{good}");
        }
        for bad in [
            "user@scim.example.com",
            "evil.example:pw@scim.example.com",
            "scim.example.com/evil",
            "scim.example.com:99999",
            "scim.example.com:",
            "a b",
            "[::1",
            "[::1]x",
            "scim..example.com",
            "",
            "scim.example.com\"><script>",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let origin = origin(None, &["10.0.0.0/8"]);
        let headers = [
            ("host", "gateway.internal:8080"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "scim.example.com"),
        ];
        assert_eq!(
            base(&origin, &request([10, 1, 2, 3], &headers)),
            "https://scim.example.com/scim/v2"
        );
        assert_eq!(
            base(&origin, &request([192, 0, 2, 1], &headers)),
            "http://gateway.internal:8080/scim/v2"
        );
    }

    #[test]
    fn public_url_overrides_whatever_the_request_says() {
        let origin = origin(Some("https://scim.example.com/idp/acme"), &[]);
        let request = request([192, 0, 2, 1], &[("host", "user@evil.example")]);
        assert_eq!(base(&origin, &request), "https://scim.example.com/idp/acme");
    }

    #[test]
    fn a_host_with_userinfo_is_refused_without_public_url() {
        let origin = origin(None, &[]);
        let refused = origin
            .of(&request([192, 0, 2, 1], &[("host", "user@evil.example")]))
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    }
}
