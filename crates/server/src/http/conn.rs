//! What a connection may cost before it sends anything useful: a deadline
//! for its first byte, an idle timeout after that, and a cap on how many are
//! open at once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A socket that fails with `TimedOut` once it has been silent for too long:
/// no byte read or written within `first_byte` of being accepted, or within
/// `idle` of its last byte after that.
pub struct Deadlined<T> {
    inner: T,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<T> Deadlined<T> {
    pub fn new(inner: T, first_byte: Duration, idle: Duration) -> Self {
        Deadlined {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(first_byte)),
        }
    }

    fn moved(&mut self) {
        let next = tokio::time::Instant::now() + self.idle;
        self.timer.as_mut().reset(next);
    }

    /// `Ready(Err)` once the deadline has passed while the socket waits.
    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        self.timer
            .as_mut()
            .poll(cx)
            .map(|()| io::Error::new(io::ErrorKind::TimedOut, "connection silent for too long"))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Deadlined<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.expired(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Deadlined<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(result) => {
                this.moved();
                Poll::Ready(result)
            }
            // A client that stops reading is as silent as one that stops writing.
            Poll::Pending => this.expired(cx).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                this.moved();
                Poll::Ready(result)
            }
            Poll::Pending => this.expired(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// What a connection over the cap is told before it is closed.
pub const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 85\r\n\r\n\
{\"error\":\"service_unavailable\",\"message\":\"too many open connections; try again soon\"}";

/// Logs a failing `accept` once per interval, with how many failed since.
pub struct AcceptErrors {
    every: Duration,
    last: Option<Instant>,
    since: u64,
}

impl AcceptErrors {
    pub fn new(every: Duration) -> Self {
        AcceptErrors {
            every,
            last: None,
            since: 0,
        }
    }

    pub fn failed(&mut self, error: &io::Error) {
        self.since += 1;
        if self.last.is_none_or(|t| t.elapsed() >= self.every) {
            tracing::warn!(error = %error, failures = self.since, "accept failed");
            self.last = Some(Instant::now());
            self.since = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_whole_json_response() {
        let text = std::str::from_utf8(TOO_MANY_CONNECTIONS).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let value: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(value["error"], "service_unavailable");
    }

    #[tokio::test]
    async fn a_silent_socket_times_out_and_a_talking_one_does_not() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(64);
        let mut server = Deadlined::new(server, Duration::from_millis(100), Duration::from_secs(5));
        let mut buf = [0u8; 8];
        let silent = server.read(&mut buf).await;
        assert_eq!(
            silent.err().map(|e| e.kind()),
            Some(io::ErrorKind::TimedOut)
        );

        let (mut client2, server2) = tokio::io::duplex(64);
        let mut server2 =
            Deadlined::new(server2, Duration::from_millis(100), Duration::from_secs(5));
        client2.write_all(b"hi").await.expect("write");
        assert_eq!(server2.read(&mut buf).await.expect("read"), 2);
        // Past the first-byte deadline, within the idle timeout: still open.
        tokio::time::sleep(Duration::from_millis(300)).await;
        client2.write_all(b"again").await.expect("write");
        assert_eq!(server2.read(&mut buf).await.expect("read"), 5);
        drop(client);
    }
}
