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

/// Everything one connection's task owns.
struct Connection {
    peer: SocketAddr,
    /// Served over TLS (the scheme of the URLs it answers with).
    tls: bool,
    /// The first request head must be complete by then (handshake included).
    deadline: Instant,
    /// With no request in flight this long, the connection is closed.
    idle_limit: Duration,
    request_timeout: Duration,
    builder: auto::Builder<TokioExecutor>,
    routes: Routes,
    /// Taken at accept, not in the task: a receiver made after the signal
    /// still sees it (`wait_for` checks the current value first).
    draining: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

/// Requests in flight on one connection, and when the last one ended: what
/// tells an idle connection from a busy one. Nothing here wakes the
/// connection's task (a wake-up per request start and end cost two extra
/// polls of the whole connection per request); its idle timer reads this
/// when it fires.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    opened: Instant,
    /// Milliseconds from `opened` to the end of the last request.
    last_end_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            opened: Instant::now(),
            last_end_ms: AtomicU64::new(0),
        }
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Since when the connection has had no request in flight; `None`
    /// while one is.
    fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let ended = self.last_end_ms.load(Ordering::Acquire);
        Some(self.opened + Duration::from_millis(ended))
    }
}

/// One request in flight; it leaves the count however it ends (answered,
/// timed out or abandoned by its client).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let ended = self.0.opened.elapsed().as_millis();
        self.0
            .last_end_ms
            .store(u64::try_from(ended).unwrap_or(u64::MAX), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connection {
    async fn serve_plain(self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        self.serve(stream).await;
    }

    async fn serve_tls(self, stream: TcpStream, acceptor: TlsAcceptor) {
        let _ = stream.set_nodelay(true);
        let peer = self.peer;
        match tokio::time::timeout_at(self.deadline, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => self.serve(stream).await,
            Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
            Err(_elapsed) => tracing::debug!(%peer, "TLS handshake not finished in time"),
        }
    }

    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            peer,
            tls,
            deadline,
            idle_limit,
            request_timeout,
            builder,
            routes,
            mut draining,
            _permit,
        } = self;
        let first_request = Arc::new(AtomicBool::new(false));
        let activity = Arc::new(Activity::new());
        let unread_body = Arc::new(AtomicBool::new(false));
        let service = TowerToHyperService::new(RouterService {
            routes,
            peer,
            tls,
            request_timeout,
            first_request: first_request.clone(),
            activity: activity.clone(),
            unread_body: unread_body.clone(),
        });
        let io = Lingering::new(io, unread_body);
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let mut connection = pin!(connection);
        // Until the first request, `deadline` bounds the wait: hyper's header
        // timeout only starts once the protocol is known, so a client that
        // sends nothing (or half an h2 preface) would otherwise hold its
        // connection, and its permit, forever. After it, the idle limit
        // counts from the last answer. hyper has no idle timeout for
        // HTTP/2, so this loop is it (for HTTP/1 hyper's header timeout
        // usually closes first).
        let idle_timer = tokio::time::sleep_until(deadline);
        let mut idle_timer = pin!(idle_timer);
        let mut closing = false;
        let result = loop {
            tokio::select! {
                result = connection.as_mut() => break result,
                Ok(_) = draining.wait_for(|draining| *draining), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = idle_timer.as_mut(), if !closing => {
                    let now = Instant::now();
                    let Some(since) = activity.idle_since() else {
                        // Busy: look again an idle limit from now.
                        idle_timer.as_mut().reset(now + idle_limit);
                        continue;
                    };
                    if !first_request.load(Ordering::Relaxed) {
                        tracing::debug!(%peer, "no complete request head in time; closing");
                        return;
                    }
                    if since + idle_limit > now {
                        idle_timer.as_mut().reset(since + idle_limit);
                        continue;
                    }
                    tracing::debug!(%peer, idle_ms = idle_limit.as_millis() as u64, "idle; closing");
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        };
        if let Err(error) = result {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}

/// The router as one connection sees it: the peer address in every request,
/// and a deadline on every response head.
#[derive(Clone)]
struct RouterService {
    routes: Routes,
    peer: SocketAddr,
    tls: bool,
    request_timeout: Duration,
    first_request: Arc<AtomicBool>,
    activity: Arc<Activity>,
    /// Set when an HTTP/1 request's body was left unread (a refusal before
    /// it, a 413): the connection then lingers as it closes.
    unread_body: Arc<AtomicBool>,
}

impl<B> Service<Request<B>> for RouterService
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A router is always ready; which one serves is chosen per request.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        self.first_request.store(true, Ordering::Relaxed);
        let in_flight = self.activity.start();
        request.extensions_mut().insert(ConnectInfo(self.peer));
        request
            .extensions_mut()
            .insert(super::public_base::Transport { tls: self.tls });
        let method = request.method().clone();
        // Shares the request's bytes; only a timeout reads it.
        let uri = request.uri().clone();
        let limit = self.request_timeout;
        let peer = self.peer;
        let mut router = Router::clone(&self.routes.0.load());
        let request = if request.version() <= http::Version::HTTP_11 {
            let unread_body = self.unread_body.clone();
            request.map(|body| Body::new(ReadToEnd::new(body, unread_body)))
        } else {
            // HTTP/2 refuses a body per stream (RST_STREAM), never by
            // closing the connection under it.
            request.map(Body::new)
        };
        Box::pin(async move {
            let response = super::response::correlated(request, async move |request| {
                match tokio::time::timeout(limit, router.call(request)).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(infallible)) => match infallible {},
                    Err(_elapsed) => {
                        tracing::warn!(%peer, %method, path = %super::observe::logged_path(uri.path()), limit_ms = limit.as_millis() as u64, "request timed out");
                        request_timed_out(limit)
                    }
                }
            });
            let response = response.await;
            drop(in_flight);
            Ok(response)
        })
    }
}

/// A request body that reports, when dropped before its end, that the
/// connection has unread body bytes.
struct ReadToEnd<B> {
    inner: B,
    ended: bool,
    unread_body: Arc<AtomicBool>,
}

impl<B: HttpBody> ReadToEnd<B> {
    fn new(inner: B, unread_body: Arc<AtomicBool>) -> Self {
        let ended = inner.is_end_stream();
        ReadToEnd {
            inner,
            ended,
            unread_body,
        }
    }
}

impl<B> HttpBody for ReadToEnd<B>
where
    B: HttpBody + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => self.ended = true,
            // A broken body is the client's to resend, not ours to drain.
            Poll::Ready(Some(Err(_))) => self.ended = true,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for ReadToEnd<B> {
    fn drop(&mut self) {
        if !self.ended {
            self.unread_body.store(true, Ordering::Relaxed);
        }
    }
}

/// The connection's socket, closed the way nginx's lingering close does:
/// when a response leaves part of a request body unread (a 413, a refusal
/// before the body), closing at once would make the kernel answer the
/// client's further bytes with a reset — and a client that writes its
/// whole body before it reads (urllib, many .NET and Java clients) would
/// see the reset instead of the answer. So shutdown sends FIN, then reads
/// and discards up to [`LINGER_BYTES`] for up to [`LINGER_TIME`], or until
/// the client closes its side.
struct Lingering<I> {
    inner: I,
    unread_body: Arc<AtomicBool>,
    written_shut: bool,
    drained: usize,
    until: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> Lingering<I> {
    fn new(inner: I, unread_body: Arc<AtomicBool>) -> Self {
        Lingering {
            inner,
            unread_body,
            written_shut: false,
            drained: 0,
            until: None,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Lingering<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.written_shut {
            std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.written_shut = true;
        }
        if !this.unread_body.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        let until = this
            .until
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER_TIME)));
        let mut scratch = [0u8; 8 * 1024];
        while this.drained < LINGER_BYTES {
            if until.as_mut().poll(cx).is_ready() {
                break;
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                // EOF: the client has closed its side too.
                Poll::Ready(Ok(())) if buf.filled().is_empty() => break,
                Poll::Ready(Ok(())) => this.drained += buf.filled().len(),
                Poll::Ready(Err(_)) => break,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// The SCIM error a client gets when its request outlives `request_timeout`.
fn request_timed_out(limit: Duration) -> Response<Body> {
    // A SCIM error, so `correlated` writes the correlation id into it.
    super::rescue::ErrorResponse(
        crate::scim::error::ScimError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            format!(
                "the request took longer than the gateway allows ({}s)",
                limit.as_secs_f64()
            ),
        )
        .with_retry_after(1),
    )
    .into_response()
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "test clients read small bodies the tests wrote"
)]
mod tests {
    use std::sync::Mutex;

    use axum::extract::Path;
    use axum::routing::get;
    use http::header;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::{Notify, mpsc, oneshot};
    use tokio::task::JoinHandle;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
    use tower::ServiceExt;

    use crate::scim::error::ERROR_SCHEMA;
    use crate::server::response::SCIM_CONTENT_TYPE;

    use super::super::tls::test_certs::TestPki;
    use super::super::tls::{Tls, TlsFiles};
    use super::*;

    /// Bound on anything a test waits for: generous, only there so a broken
    /// server fails the test instead of hanging it.
    const PATIENCE: Duration = Duration::from_secs(10);

    async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
        tokio::time::timeout(PATIENCE, future)
            .await
            .unwrap_or_else(|_| panic!("{what}: nothing after {PATIENCE:?}"))
    }

    struct Running {
        addr: SocketAddr,
        stop: oneshot::Sender<()>,
        server: JoinHandle<io::Result<()>>,
    }

    async fn start(router: Router, settings: ListenSettings, tls: Option<Arc<Tls>>) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, settings, tls, async move {
            let _ = stopped.await;
        }));
        Running { addr, stop, server }
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/hello",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                    format!("hello {}", peer.ip())
                }),
            )
            .route(
                "/sleep",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    "too late"
                }),
            )
    }

    fn get_request(path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    }

    /// Sends `request` on a new connection and reads until the server closes.
    async fn exchange(addr: SocketAddr, request: impl AsRef<[u8]>) -> io::Result<String> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request.as_ref()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }

    /// Reads one response with a content-length body off a kept-alive stream.
    async fn read_response(stream: &mut TcpStream) -> String {
        let mut buffer = Vec::new();
        loop {
            let text = String::from_utf8_lossy(&buffer).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if buffer.len() >= end + 4 + length {
                    return text;
                }
            }
            let mut chunk = [0u8; 4096];
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "connection closed mid-response: {text}");
            buffer.extend_from_slice(&chunk[..read]);
        }
    }

    /// A client that trusts only `ca_pem` and finds `localhost` at `addr`.
    fn tls_client(ca_pem: &str, addr: SocketAddr) -> reqwest::Client {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
            .resolve("localhost", addr)
            .build()
            .unwrap()
    }

    fn https(addr: SocketAddr, path: &str) -> String {
        format!("https://localhost:{}{path}", addr.port())
    }

    /// The leaf certificate the server presents to a new connection.
    async fn presented_leaf(addr: SocketAddr, ca_pems: &[&str]) -> io::Result<Vec<u8>> {
        let mut roots = RootCertStore::empty();
        for pem in ca_pems {
            roots
                .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
                .unwrap();
        }
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let stream = TcpStream::connect(addr).await?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), stream)
            .await?;
        let (_, session) = stream.get_ref();
        Ok(session.peer_certificates().unwrap()[0].to_vec())
    }

    fn with_pki(pki: &TestPki) -> (tempfile::TempDir, TlsFiles, Arc<Tls>) {
        let dir = tempfile::tempdir().unwrap();
        let files = pki.write(dir.path());
        let tls = Arc::new(Tls::load(files.clone()).unwrap());
        (dir, files, tls)
    }

    #[tokio::test]
    async fn plain_http1_request_is_served_with_the_peer_address() {
        let server = start(app(), ListenSettings::default(), None).await;
        let answer = within("GET /hello", exchange(server.addr, get_request("/hello")))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("hello 127.0.0.1"), "{answer}");
    }

    #[tokio::test]
    async fn plain_tcp_speaks_h2c_with_prior_knowledge() {
        let server = start(app(), ListenSettings::default(), None).await;
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let url = format!("http://{}/hello", server.addr);
        let response = within("h2c GET", client.get(url).send()).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.text().await.unwrap(), "hello 127.0.0.1");
    }

    #[tokio::test]
    async fn http2_over_tls_is_negotiated_by_alpn() {
        let pki = TestPki::new("a");
        let (_dir, _files, tls) = with_pki(&pki);
        let server = start(app(), ListenSettings::default(), Some(tls)).await;
        let client = tls_client(&pki.ca_pem, server.addr);
        let response = within("h2 GET", client.get(https(server.addr, "/hello")).send())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.text().await.unwrap(), "hello 127.0.0.1");
    }

    #[tokio::test]
    async fn reload_serves_the_new_certificate_and_survives_a_broken_one() {
        let (a, b) = (TestPki::new("a"), TestPki::new("b"));
        let (_dir, files, tls) = with_pki(&a);
        let server = start(app(), ListenSettings::default(), Some(tls.clone())).await;
        let both = [a.ca_pem.as_str(), b.ca_pem.as_str()];
        assert_eq!(
            within("handshake", presented_leaf(server.addr, &both))
                .await
                .unwrap(),
            a.leaf_der
        );

        std::fs::write(&files.cert, &b.leaf_pem).unwrap();
        std::fs::write(&files.key, &b.key_pem).unwrap();
        tls.reload().unwrap();
        assert_eq!(
            within("handshake", presented_leaf(server.addr, &both))
                .await
                .unwrap(),
            b.leaf_der
        );
        let answer = within(
            "GET trusting B",
            tls_client(&b.ca_pem, server.addr)
                .get(https(server.addr, "/hello"))
                .send(),
        )
        .await;
        assert_eq!(answer.unwrap().status(), StatusCode::OK);
        let answer = within(
            "GET trusting A",
            tls_client(&a.ca_pem, server.addr)
                .get(https(server.addr, "/hello"))
                .send(),
        )
        .await;
        assert!(answer.is_err(), "a client trusting only A still connects");

        std::fs::write(&files.key, "-----BEGIN PRIVATE KEY-----\n!!\n").unwrap();
        assert!(tls.reload().is_err());
        let answer = within(
            "GET trusting B",
            tls_client(&b.ca_pem, server.addr)
                .get(https(server.addr, "/hello"))
                .send(),
        )
        .await;
        assert_eq!(answer.unwrap().status(), StatusCode::OK);
        assert_eq!(
            within("handshake", presented_leaf(server.addr, &both))
                .await
                .unwrap(),
            b.leaf_der
        );
    }

    #[tokio::test]
    async fn slow_request_heads_are_cut_off_while_others_are_served() {
        let settings = ListenSettings {
            header_read_timeout: Duration::from_millis(200),
            ..ListenSettings::default()
        };
        let server = start(app(), settings, None).await;
        // Half a head, then nothing: classic slowloris.
        let mut slow = TcpStream::connect(server.addr).await.unwrap();
        slow.write_all(b"GET /hello HTTP/1.1\r\nHost: te")
            .await
            .unwrap();
        // Not a byte: hyper's own timer has not started yet for this one.
        let mut silent = TcpStream::connect(server.addr).await.unwrap();
        // Half an HTTP/2 preface: stuck while hyper decides on the protocol.
        let mut half_preface = TcpStream::connect(server.addr).await.unwrap();
        half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();

        let answer = within("GET /hello", exchange(server.addr, get_request("/hello")))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

        for (name, stream) in [
            ("slow", &mut slow),
            ("silent", &mut silent),
            ("half preface", &mut half_preface),
        ] {
            let mut rest = Vec::new();
            // EOF or a reset: either way the server let go.
            let _ = within(name, stream.read_to_end(&mut rest)).await;
            let rest = String::from_utf8_lossy(&rest);
            assert!(!rest.contains("200 OK"), "{name}: {rest}");
        }
    }

    #[tokio::test]
    async fn oversized_head_is_refused_and_the_next_client_served() {
        let server = start(app(), ListenSettings::default(), None).await;
        let big = format!(
            "GET /hello HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        // The server may close before it has read everything: a failed write
        // or a reset is a refusal too.
        if let Ok(answer) = within("oversized GET", exchange(server.addr, big)).await {
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
                "{answer}"
            );
        }
        let fits = format!(
            "GET /hello HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(12 * 1024)
        );
        let answer = within("12 KiB head", exchange(server.addr, fits))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }

    #[tokio::test]
    async fn beyond_max_connections_a_client_waits_for_one_to_close() {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = seen.clone();
        let router = Router::new().route(
            "/log/{name}",
            get(move |Path(name): Path<String>| async move {
                log.lock().unwrap().push(name);
                "ok"
            }),
        );
        let settings = ListenSettings {
            max_connections: 1,
            ..ListenSettings::default()
        };
        let server = start(router, settings, None).await;

        let mut first = TcpStream::connect(server.addr).await.unwrap();
        first
            .write_all(b"GET /log/first-1 HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        within("first-1", read_response(&mut first)).await;

        // Connects (the kernel queues it) but is not accepted.
        let second = tokio::spawn(exchange(server.addr, get_request("/log/second")));
        // Only gives a broken limit the chance to show; the assertions below
        // hold however long this takes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        first
            .write_all(b"GET /log/first-2 HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        within("first-2", read_response(&mut first)).await;
        assert_eq!(*seen.lock().unwrap(), ["first-1", "first-2"]);
        assert!(!second.is_finished());

        drop(first);
        let answer = within("second", second).await.unwrap().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert_eq!(*seen.lock().unwrap(), ["first-1", "first-2", "second"]);
    }

    #[tokio::test]
    async fn a_request_past_its_deadline_gets_a_scim_503_over_the_wire() {
        let settings = ListenSettings {
            request_timeout: Duration::from_millis(200),
            ..ListenSettings::default()
        };
        let server = start(app(), settings, None).await;
        let url = format!("http://{}/sleep", server.addr);
        let response = within("GET /sleep", reqwest::get(url)).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], SCIM_CONTENT_TYPE);
        // The deadline's answer is correlated like any other.
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "schemas": [ERROR_SCHEMA],
                "status": "503",
                "detail": format!("the request took longer than the gateway allows (0.2s) (correlation id {id})"),
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn request_deadline_counts_from_the_head_not_the_clock() {
        let service = RouterService {
            routes: app().into(),
            peer: SocketAddr::from(([192, 0, 2, 1], 4711)),
            tls: false,
            request_timeout: Duration::from_secs(60),
            first_request: Arc::new(AtomicBool::new(false)),
            activity: Arc::new(Activity::new()),
            unread_body: Arc::default(),
        };
        let request = Request::get("/sleep").body(Body::empty()).unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            body["detail"].as_str().unwrap().starts_with(
                "the request took longer than the gateway allows (60s) (correlation id "
            ),
            "{body}"
        );

        // A quick route is untouched, and sees the peer it was given.
        let request = Request::get("/hello").body(Body::empty()).unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(body, "hello 192.0.2.1");
        assert!(service.first_request.load(Ordering::Relaxed));
    }

    /// A route that reports when it has started and finishes when released.
    fn held_route() -> (Router, mpsc::UnboundedReceiver<()>, Arc<Notify>) {
        let (started, on_start) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let released = release.clone();
        let router = Router::new().route(
            "/hold",
            get(move || async move {
                let _ = started.send(());
                released.notified().await;
                "done"
            }),
        );
        (router, on_start, release)
    }

    async fn wait_until_refused(addr: SocketAddr) {
        within("listener to close", async {
            while let Ok(stream) = TcpStream::connect(addr).await {
                drop(stream);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    #[tokio::test]
    async fn shutdown_refuses_new_clients_and_lets_in_flight_requests_finish() {
        let (router, mut on_start, release) = held_route();
        let server = start(router, ListenSettings::default(), None).await;
        let in_flight = tokio::spawn(exchange(server.addr, get_request("/hold")));
        within("handler start", on_start.recv()).await.unwrap();

        server.stop.send(()).unwrap();
        wait_until_refused(server.addr).await;
        assert!(!server.server.is_finished(), "returned before draining");

        release.notify_one();
        let answer = within("in-flight answer", in_flight)
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        within("serve to return", server.server)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn drain_timeout_closes_what_is_still_running() {
        let (router, mut on_start, _never_released) = held_route();
        let settings = ListenSettings {
            drain_timeout: Duration::from_millis(200),
            ..ListenSettings::default()
        };
        let server = start(router, settings, None).await;
        let in_flight = tokio::spawn(exchange(server.addr, get_request("/hold")));
        within("handler start", on_start.recv()).await.unwrap();

        server.stop.send(()).unwrap();
        within("serve to return", server.server)
            .await
            .unwrap()
            .unwrap();
        let answer = within("in-flight answer", in_flight).await.unwrap();
        // Closed without an answer: EOF (empty) or a reset.
        assert!(
            answer.is_err() || answer.as_ref().unwrap().is_empty(),
            "{answer:?}"
        );
    }

    #[tokio::test]
    async fn failed_handshakes_and_resets_do_not_stop_the_accept_loop() {
        let pki = TestPki::new("a");
        let (_dir, _files, tls) = with_pki(&pki);
        let server = start(app(), ListenSettings::default(), Some(tls)).await;

        // Plain HTTP on the TLS port.
        let answer = within("plain to TLS", exchange(server.addr, get_request("/hello"))).await;
        assert!(!answer.unwrap_or_default().contains("200 OK"));
        // A client that does not trust the certificate aborts the handshake.
        let stranger = TestPki::new("stranger");
        assert!(
            within(
                "untrusted",
                presented_leaf(server.addr, &[&stranger.ca_pem])
            )
            .await
            .is_err()
        );
        // A reset in the middle of a head.
        let reset = TcpStream::connect(server.addr).await.unwrap();
        reset.set_zero_linger().unwrap();
        drop(reset);

        let response = within(
            "GET after failures",
            tls_client(&pki.ca_pem, server.addr)
                .get(https(server.addr, "/hello"))
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn extreme_settings_are_clamped_instead_of_panicking() {
        let settings = ListenSettings {
            max_connections: 0,
            header_read_timeout: Duration::MAX,
            max_header_bytes: 0,
            request_timeout: Duration::MAX,
            drain_timeout: Duration::MAX,
        };
        let server = start(app(), settings, None).await;
        let answer = within("GET /hello", exchange(server.addr, get_request("/hello")))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        server.stop.send(()).unwrap();
        within("serve to return", server.server)
            .await
            .unwrap()
            .unwrap();
    }
}
