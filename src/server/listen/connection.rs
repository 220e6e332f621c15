//! One accepted connection's task: TLS handshake, HTTP/1 or HTTP/2, the
//! idle limit, and the count of requests in flight on it.

use super::*;

/// Everything one connection's task owns.
pub(super) struct Connection {
    pub(super) peer: SocketAddr,
    /// Served over TLS (the scheme of the URLs it answers with).
    pub(super) tls: bool,
    /// The first request head must be complete by then (handshake included).
    pub(super) deadline: Instant,
    /// With no request in flight this long, the connection is closed.
    pub(super) idle_limit: Duration,
    pub(super) request_timeout: Duration,
    pub(super) builder: auto::Builder<TokioExecutor>,
    pub(super) routes: Routes,
    /// Taken at accept, not in the task: a receiver made after the signal
    /// still sees it (`wait_for` checks the current value first).
    pub(super) draining: watch::Receiver<bool>,
    pub(super) _permit: OwnedSemaphorePermit,
}

/// Requests in flight on one connection, and when the last one ended: what
/// tells an idle connection from a busy one. Nothing here wakes the
/// connection's task (a wake-up per request start and end cost two extra
/// polls of the whole connection per request); its idle timer reads this
/// when it fires.
#[derive(Debug)]
pub(super) struct Activity {
    pub(super) in_flight: AtomicUsize,
    pub(super) opened: Instant,
    /// Milliseconds from `opened` to the end of the last request.
    pub(super) last_end_ms: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            opened: Instant::now(),
            last_end_ms: AtomicU64::new(0),
        }
    }

    pub(super) fn start(self: &Arc<Self>) -> InFlight {
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
pub(super) struct InFlight(Arc<Activity>);

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
    pub(super) async fn serve_plain(self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        self.serve(stream).await;
    }

    pub(super) async fn serve_tls(self, stream: TcpStream, acceptor: TlsAcceptor) {
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
