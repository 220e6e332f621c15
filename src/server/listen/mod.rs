//! The accept loop: our own instead of `axum::serve`, because the edge needs
//! what that one does not offer — TLS with reloadable certificates, a cap on
//! open connections, a deadline for request heads (slowloris), a bound on head
//! size, a per-request deadline answered in SCIM, and a draining shutdown
//! that gives up after a while.
//!
//! One task per connection, kept in a `JoinSet` so that shutdown can abort
//! whatever is left once the drain timeout has passed. A connection with no
//! request in flight for the idle limit is closed, HTTP/2 as HTTP/1, so an
//! idle client does not keep its slot under `max_connections`; one closed
//! with a request body unread lingers first, so its client reads the answer
//! rather than a reset (see `Lingering`). Nothing that happens
//! on one connection (a failed handshake, a reset, a panicking handler) ends
//! the loop.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::Service;

use super::tls::Tls;

mod connection;
mod linger;
mod service;
#[cfg(test)]
mod tests;

use connection::Activity;
use connection::Connection;
use linger::Lingering;
use service::RouterService;

/// hyper refuses (panics on) an HTTP/1 read buffer smaller than this.
const MIN_HEAD_BUFFER: usize = 8 * 1024;
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A connection closed with part of a request body unread lingers: it reads
/// and discards up to this much more of it, for up to [`LINGER_TIME`], before
/// it closes (see [`Lingering`]). A few times the default body limit: a
/// client that sends a body over the limit rarely sends one far over it.
const LINGER_BYTES: usize = 4 * 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(2);
/// Deadlines are added to `Instant`s, which panics on overflow: a configured
/// "forever" (`Duration::MAX`) becomes a year.
const LONGEST_DEADLINE: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The listener's knobs, built once from config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSettings {
    /// Open connections at most; beyond this the listener stops accepting and
    /// new clients wait in the kernel's accept queue. 0 is taken as 1.
    pub max_connections: usize,
    /// Time from accept to a complete first request head, TLS handshake
    /// included; for later requests on a kept-alive HTTP/1 connection, time
    /// from the previous response to the next head. Also the idle limit of
    /// every connection: one with no request in flight this long is closed
    /// (HTTP/2 too, with a GOAWAY), and HTTP/2's keep-alive ping interval.
    pub header_read_timeout: Duration,
    /// HTTP/1 read buffer cap (at least 8 KiB): a larger request head gets 431
    /// or a closed connection. Also HTTP/2's header list limit.
    pub max_header_bytes: usize,
    /// Time from a complete head to the response head; past it the client
    /// gets a SCIM 503 with `Retry-After: 1`.
    pub request_timeout: Duration,
    /// On shutdown, how long in-flight requests may still run before their
    /// connections are closed.
    pub drain_timeout: Duration,
}

impl Default for ListenSettings {
    fn default() -> Self {
        ListenSettings {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// What a listener serves: the router a reload last stored, read afresh by
/// every request, so a reload swaps config and mappings without dropping
/// connections.
#[derive(Clone)]
pub struct Routes(Arc<ArcSwap<Router>>);

impl From<Arc<ArcSwap<Router>>> for Routes {
    fn from(current: Arc<ArcSwap<Router>>) -> Self {
        Routes(current)
    }
}

/// A router that no reload replaces.
impl From<Router> for Routes {
    fn from(router: Router) -> Self {
        Routes(Arc::new(ArcSwap::from_pointee(router)))
    }
}

/// Serves `routes` on `listener` (TLS when `tls` is given) until `shutdown`
/// resolves; then stops accepting, drains for up to `drain_timeout` and closes
/// what is left. Connection-level failures are logged, never returned.
pub async fn serve(
    listener: TcpListener,
    routes: impl Into<Routes>,
    settings: ListenSettings,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let routes = routes.into();
    let builder = connection_builder(&settings);
    let acceptor = tls.as_deref().map(Tls::acceptor);
    // `true` once the listener stops accepting: every connection then
    // finishes what it is answering and closes.
    let (drain, draining) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(
        settings.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let mut connections = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut shutdown = pin!(shutdown);

    loop {
        while let Some(finished) = connections.try_join_next() {
            report_task(finished);
        }
        // The permit comes before `accept`: at the cap, clients queue in the
        // kernel instead of being accepted and then starved.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    accepted
                }
                Err(error) if is_per_connection(&error) => {
                    tracing::debug!(%error, "a connection failed before it was accepted");
                    continue;
                }
                Err(error) => {
                    // EMFILE and friends: retrying at once would spin, and
                    // the queued client is still there when fds free up.
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "accept failed; backing off");
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            },
        };
        let connection = Connection {
            peer,
            tls: acceptor.is_some(),
            deadline: Instant::now() + settings.header_read_timeout.min(LONGEST_DEADLINE),
            idle_limit: settings.header_read_timeout.min(LONGEST_DEADLINE),
            request_timeout: settings.request_timeout,
            builder: builder.clone(),
            routes: routes.clone(),
            draining: draining.clone(),
            _permit: permit,
        };
        match &acceptor {
            Some(acceptor) => connections.spawn(connection.serve_tls(stream, acceptor.clone())),
            None => connections.spawn(connection.serve_plain(stream)),
        };
    }

    // Closing the socket makes new clients see "connection refused" rather
    // than wait in a queue nobody reads.
    drop(listener);
    tracing::info!(%local, open = connections.len(), "stopped accepting; draining");
    let _ = drain.send(true);
    let drained = async {
        while let Some(finished) = connections.join_next().await {
            report_task(finished);
        }
    };
    if tokio::time::timeout(settings.drain_timeout, drained)
        .await
        .is_err()
    {
        tracing::warn!(
            %local,
            drain_timeout_ms = settings.drain_timeout.as_millis() as u64,
            "connections still open after the drain timeout; closing them"
        );
    }
    connections.shutdown().await;
    tracing::info!(%local, "listener stopped");
    Ok(())
}

/// HTTP/1.1 and HTTP/2 on every connection, chosen by the client's preface
/// (h2 over TLS via ALPN, h2c by prior knowledge on plain TCP).
fn connection_builder(settings: &ListenSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout.min(LONGEST_DEADLINE))
        .max_buf_size(settings.max_header_bytes.max(MIN_HEAD_BUFFER));
    let idle_limit = settings.header_read_timeout.min(LONGEST_DEADLINE);
    builder
        .http2()
        .timer(TokioTimer::new())
        // Pings find a dead peer under a long request; an idle connection is
        // closed by `Connection::serve` instead, whether the peer answers
        // pings or not.
        .keep_alive_interval(idle_limit)
        .keep_alive_timeout(idle_limit)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Errors of one would-be connection, not of the listener.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

fn report_task(finished: Result<(), JoinError>) {
    match finished {
        Err(error) if error.is_panic() => {
            tracing::error!("a connection task panicked; its connection was closed");
        }
        // Cancelled tasks are the ones shutdown aborted: expected.
        Ok(()) | Err(_) => {}
    }
}
