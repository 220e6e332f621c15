//! Throttles repeated authentication failures per client, to bound what
//! bad requests cost (a refusal, a log line each), not to stop guessing: a
//! bearer token is 256 random bits, and no request rate makes a right guess
//! a realistic threat.
//!
//! Each client (its peer address, see [`ClientKey`]) has a failure budget: a
//! burst of [`FAILURE_BURST`] failures, refilled at one failure per
//! [`FAILURE_REFILL`] (≈10 a minute). While the budget is spent the client's
//! *wrong* tokens are answered 429 instead of 401. A *valid* token is checked
//! first, always, in constant time, and is never refused by this throttle:
//! behind a shared ingress every IdP has the same peer address, and a
//! budget that refused valid tokens let anyone's bad requests lock out every
//! IdP. A throttled guesser learns no more than an unthrottled one (a wrong
//! guess gets 429 rather than 401, a right one gets in either way), and it
//! learns nothing it could use: the budget bounds the cost of its requests,
//! the token's entropy bounds its chances.
//!
//! The budget is one GCRA cell per client ("all failures charged so far have
//! drained by `drained_at`"). It is hand-rolled rather than `governor`
//! because the gate has to *ask* whether a client is throttled without
//! charging it — only failures are charged, not every request — and
//! `governor` offers no such non-consuming check.
//!
//! Behind a proxy in `[server] trusted_proxies`, the client is the address
//! that proxy reports (the last `X-Forwarded-For` entry no trusted proxy
//! wrote), so one client's failures spend only its own budget; anyone
//! else's `X-Forwarded-For` is ignored, since it would let a client pick
//! its budget.
//!
//! One guard serves every connection of a router, so rotating base paths
//! does not multiply an attacker's attempts. A reload builds a new router
//! and with it a fresh guard; that is at most one extra burst per reload.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap};
use tokio::time::Instant;

use crate::config::ProxyNet;

/// Failures a client may make at once before it is throttled.
pub const FAILURE_BURST: u32 = 10;
/// One failure is forgiven per this interval (10 per minute).
pub const FAILURE_REFILL: Duration = Duration::from_secs(6);
/// Clients tracked at most; past this, new clients share one budget (see
/// [`FailureThrottle::charge`]).
const MAX_TRACKED: usize = 65_536;

/// Whom a failure is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 address, or the /64 an IPv6 address is in: one IPv6 host
    /// usually owns a whole /64, so keying by full address would give it
    /// 2^64 budgets.
    Ip(IpAddr),
    /// No peer address is known (a router served without `ConnectInfo`), or
    /// the table is full: every such request shares this one budget, which
    /// errs towards throttling rather than towards unlimited guesses.
    Shared,
}

impl ClientKey {
    /// The key for a request: its peer address from `ConnectInfo`, which
    /// `listen::serve` (and axum's `into_make_service_with_connect_info`)
    /// put in every request — or, when that peer is a trusted proxy, the
    /// client it forwarded for. `X-Forwarded-For` from anyone else is not
    /// believed: any client can write it, and would then pick its budget.
    pub fn of(extensions: &Extensions, headers: &HeaderMap, trusted: &[ProxyNet]) -> ClientKey {
        let Some(ConnectInfo(peer)) = extensions.get::<ConnectInfo<SocketAddr>>() else {
            return ClientKey::Shared;
        };
        let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
        let mut client = peer.ip();
        if is_trusted(client) {
            // Walk back from the nearest hop; the first address no trusted
            // proxy wrote is the client. One that does not parse ends the
            // walk at the last hop that did.
            let hops = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .collect::<Vec<_>>();
            for hop in hops.iter().rev() {
                let Ok(ip) = hop.parse::<IpAddr>() else { break };
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
        }
        ClientKey::Ip(prefix(client))
    }
}

fn prefix(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
    }
}

/// Per-client failure budgets, shared by every connection of one router.
#[derive(Debug)]
pub struct FailureThrottle {
    burst: u32,
    refill: Duration,
    /// When each client's charged failures have all drained; an entry in
    /// the past is a client with its whole budget (and may be pruned).
    drained_at: Mutex<HashMap<ClientKey, Instant>>,
}

impl Default for FailureThrottle {
    fn default() -> Self {
        FailureThrottle::new(FAILURE_BURST, FAILURE_REFILL)
    }
}

impl FailureThrottle {
    pub fn new(burst: u32, refill: Duration) -> Self {
        FailureThrottle {
            burst: burst.max(1),
            refill,
            drained_at: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(wait)` while `client` has no failure left to spend, without
    /// charging it.
    pub fn throttled(&self, client: ClientKey, now: Instant) -> Option<Duration> {
        let table = self.table();
        let drained_at = *table.get(&client)?;
        let outstanding = drained_at.saturating_duration_since(now);
        // Room for one more failure while fewer than `burst` are outstanding.
        let allowance = self.refill * (self.burst - 1);
        outstanding
            .checked_sub(allowance)
            .filter(|wait| !wait.is_zero())
    }

    /// Charges one failure to `client`.
    pub fn charge(&self, client: ClientKey, now: Instant) {
        let mut table = self.table();
        let mut key = client;
        if !table.contains_key(&key) && table.len() >= MAX_TRACKED {
            // Forget clients whose budget is whole again before refusing to
            // track a new one.
            table.retain(|_, drained_at| *drained_at > now);
            if table.len() >= MAX_TRACKED {
                key = ClientKey::Shared;
            }
        }
        let drained_at = table.entry(key).or_insert(now);
        *drained_at = (*drained_at).max(now) + self.refill;
    }

    /// The table, even if a thread panicked holding it: the worst a torn
    /// entry does is mis-count one client's failures.
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, Instant>> {
        self.drained_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> ClientKey {
        ClientKey::Ip(prefix(text.parse().unwrap()))
    }

    #[test]
    fn the_burst_is_spent_then_the_client_waits_one_refill() {
        let guard = FailureThrottle::new(3, Duration::from_secs(6));
        let now = Instant::now();
        let client = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(guard.throttled(client, now), None);
            guard.charge(client, now);
        }
        assert_eq!(guard.throttled(client, now), Some(Duration::from_secs(6)));
        // Another client is untouched.
        assert_eq!(guard.throttled(ip("192.0.2.2"), now), None);
        // One refill later, one more failure is allowed.
        let later = now + Duration::from_secs(6);
        assert_eq!(guard.throttled(client, later), None);
    }

    fn key_of(peer: [u8; 4], forwarded_for: Option<&str>, trusted: &[&str]) -> ClientKey {
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(SocketAddr::from((peer, 4711))));
        let mut headers = HeaderMap::new();
        if let Some(value) = forwarded_for {
            headers.insert("x-forwarded-for", value.parse().unwrap());
        }
        let trusted: Vec<ProxyNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        ClientKey::of(&extensions, &headers, &trusted)
    }

    #[test]
    fn without_a_peer_address_every_client_shares_one_budget() {
        let key = ClientKey::of(&Extensions::new(), &HeaderMap::new(), &[]);
        assert_eq!(key, ClientKey::Shared);
    }

    #[test]
    fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
        let proxy = [10, 0, 0, 1];
        let trusted = ["10.0.0.0/8"];
        assert_eq!(key_of(proxy, Some("192.0.2.1"), &trusted), ip("192.0.2.1"));
        // A forged first entry is skipped: the proxy appended the real one.
        assert_eq!(
            key_of(proxy, Some("203.0.113.9, 192.0.2.1, 10.0.0.2"), &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(key_of(proxy, None, &trusted), ip("10.0.0.1"));
        // From an untrusted peer the header is ignored.
        assert_eq!(
            key_of([192, 0, 2, 50], Some("192.0.2.1"), &trusted),
            ip("192.0.2.50")
        );
        assert_eq!(key_of(proxy, Some("192.0.2.1"), &[]), ip("10.0.0.1"));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_v4_as_v4() {
        assert_eq!(ip("2001:db8::1"), ip("2001:db8::ffff:1"));
        assert_ne!(ip("2001:db8::1"), ip("2001:db8:0:1::1"));
        assert_eq!(ip("::ffff:192.0.2.1"), ip("192.0.2.1"));
    }
}
