//! The router as one connection serves it: the peer address, the
//! correlation id and the per-request deadline around every request.

use super::*;

/// The router as one connection sees it: the peer address in every request,
/// and a deadline on every response head.
#[derive(Clone)]
pub(super) struct RouterService {
    pub(super) routes: Routes,
    pub(super) peer: SocketAddr,
    pub(super) tls: bool,
    pub(super) request_timeout: Duration,
    pub(super) first_request: Arc<AtomicBool>,
    pub(super) activity: Arc<Activity>,
    /// Set when an HTTP/1 request's body was left unread (a refusal before
    /// it, a 413): the connection then lingers as it closes.
    pub(super) unread_body: Arc<AtomicBool>,
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
            .insert(crate::server::public_base::Transport { tls: self.tls });
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
            let response = crate::server::response::correlated(request, async move |request| {
                match tokio::time::timeout(limit, router.call(request)).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(infallible)) => match infallible {},
                    Err(_elapsed) => {
                        tracing::warn!(%peer, %method, path = %crate::server::observe::logged_path(uri.path()), limit_ms = limit.as_millis() as u64, "request timed out");
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
pub(super) struct ReadToEnd<B> {
    pub(super) inner: B,
    pub(super) ended: bool,
    pub(super) unread_body: Arc<AtomicBool>,
}

impl<B: HttpBody> ReadToEnd<B> {
    pub(super) fn new(inner: B, unread_body: Arc<AtomicBool>) -> Self {
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

/// The SCIM error a client gets when its request outlives `request_timeout`.
pub(super) fn request_timed_out(limit: Duration) -> Response<Body> {
    // A SCIM error, so `correlated` writes the correlation id into it.
    crate::server::rescue::ErrorResponse(
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
