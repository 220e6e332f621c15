//! Closing a connection whose client is still sending, so that client
//! reads the answer rather than a reset.

use super::*;

/// The connection's socket, closed the way nginx's lingering close does:
/// when a response leaves part of a request body unread (a 413, a refusal
/// before the body), closing at once would make the kernel answer the
/// client's further bytes with a reset — and a client that writes its
/// whole body before it reads (urllib, many .NET and Java clients) would
/// see the reset instead of the answer. So shutdown sends FIN, then reads
/// and discards up to [`LINGER_BYTES`] for up to [`LINGER_TIME`], or until
/// the client closes its side.
pub(super) struct Lingering<I> {
    pub(super) inner: I,
    pub(super) unread_body: Arc<AtomicBool>,
    pub(super) written_shut: bool,
    pub(super) drained: usize,
    pub(super) until: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> Lingering<I> {
    pub(super) fn new(inner: I, unread_body: Arc<AtomicBool>) -> Self {
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
