//! hyper's automatic answers, given kit's JSON error body.
//!
//! When an HTTP/1.1 request head does not parse, hyper answers by itself, before any service
//! sees a request: 400 (malformed), 414 (URI too long) or 431 (head over the size limit), with
//! an empty body, and closes the connection. It offers no hook for the body, so every other kit
//! error is `{"error":"..."}` and these were not. This stream recognises such an answer as it
//! is written and writes it with a JSON body instead.
//!
//! An answer is hyper's own when no request reached the service since the last answer's head
//! was written (the connection's [`Calls`]: every answer of the service follows its call), no
//! call is running, and it is a bare head with one of those statuses and `content-length: 0`.
//! A service's own empty 400 is the first head after its call, so it is never taken for one.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::calls::Calls;

/// A connection's stream that gives hyper's automatic answers a JSON body.
pub(crate) struct JsonAutomaticAnswers<S> {
    inner: S,
    calls: Arc<Calls>,
    /// Calls made when the last final answer's head was written (at least its first byte): a
    /// head written while this is still the count answers no call.
    made_at_head: u64,
    /// The rewritten answer, and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> JsonAutomaticAnswers<S> {
    pub(crate) fn new(inner: S, calls: Arc<Calls>) -> Self {
        JsonAutomaticAnswers {
            inner,
            calls,
            made_at_head: 0,
            pending: None,
        }
    }

    /// `buf` with a JSON body, if it is hyper's automatic answer: a bare final head with one of
    /// its statuses, when `answers_no_call`.
    fn rewrite(&self, buf: &[u8], answers_no_call: bool) -> Option<Vec<u8>> {
        if !answers_no_call || self.calls.answering() != 0 {
            return None;
        }
        let message = match buf.get(..12)? {
            b"HTTP/1.1 400" => "malformed request head",
            b"HTTP/1.1 414" => "request URI too long",
            b"HTTP/1.1 431" => "request header fields too large",
            _ => return None,
        };
        // A bare head: one blank line, at its end.
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        if end != buf.len() {
            return None;
        }
        const LENGTH: &[u8] = b"\r\ncontent-length: 0\r\n";
        let at = buf.windows(LENGTH.len()).position(|w| w == LENGTH)?;
        let body = format!(r#"{{"error":"{message}"}}"#);
        let mut out = Vec::with_capacity(buf.len() + 64 + body.len());
        out.extend_from_slice(&buf[..at]);
        out.extend_from_slice(
            format!(
                "\r\ncontent-type: {}\r\ncontent-length: {}\r\n",
                crate::JSON_CONTENT_TYPE,
                body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&buf[at + LENGTH.len()..]);
        out.extend_from_slice(body.as_bytes());
        Some(out)
    }
}

/// Whether `slice` begins a final answer's head (1xx ones, such as 100 Continue, come before
/// the final one).
fn is_final_head(slice: &[u8]) -> bool {
    slice.starts_with(b"HTTP/1.1 ") && slice.get(9) != Some(&b'1')
}

impl<S: AsyncWrite + Unpin> JsonAutomaticAnswers<S> {
    /// `poll`, having noted that the calls `made` are answered if it wrote into the final head
    /// that begins at `head_at`.
    fn noted(
        &mut self,
        poll: Poll<io::Result<usize>>,
        head_at: Option<usize>,
        made: u64,
    ) -> Poll<io::Result<usize>> {
        if let (Poll::Ready(Ok(n)), Some(at)) = (&poll, head_at)
            && *n > at
        {
            self.made_at_head = made;
        }
        poll
    }

    /// Writes what is left of a rewritten answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonAutomaticAnswers<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonAutomaticAnswers<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        // hyper hands over a head as a slice of its own (with the body's chunks after it). A
        // head counts as answering the calls made so far only once it is written: hyper hands
        // a head that could not go out back again.
        let made = this.calls.made();
        let mut offset = 0;
        let mut head_at = None;
        for (i, slice) in bufs.iter().enumerate() {
            if is_final_head(slice) {
                let answers_no_call = head_at.is_some() || made == this.made_at_head;
                if let Some(rewritten) = this.rewrite(slice, answers_no_call) {
                    if offset > 0 {
                        // What comes before it first; hyper hands the rest back.
                        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, &bufs[..i]);
                        return this.noted(poll, head_at, made);
                    }
                    // hyper's bytes count as written; ours go out now and on the next calls.
                    this.made_at_head = made;
                    this.pending = Some((rewritten, 0));
                    let _ = this.poll_pending(cx)?;
                    return Poll::Ready(Ok(slice.len()));
                }
                head_at = Some(offset);
            }
            offset += slice.len();
        }
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.noted(poll, head_at, made)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const HEAD_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 30 Nov 2026 16:00:00 GMT\r\n\r\n";

    /// What the client reads when the server side reads `request` and then writes `answer`,
    /// with `calls` made in between, through a pipe of `capacity` bytes.
    async fn exchange(capacity: usize, request: &[u8], calls: u64, answer: &[u8]) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(capacity);
        let counted = Arc::new(Calls::default());
        let mut stream = JsonAutomaticAnswers::new(server, Arc::clone(&counted));
        let sent = request.len();
        let answer = answer.to_vec();
        let server = tokio::spawn(async move {
            let mut got = vec![0; sent];
            stream.read_exact(&mut got).await.unwrap();
            for _ in 0..calls {
                drop(counted.start());
            }
            stream.write_all(&answer).await.unwrap();
            stream.flush().await.unwrap();
            stream.shutdown().await.unwrap();
        });
        client.write_all(request).await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        server.await.unwrap();
        out
    }

    #[tokio::test]
    async fn hypers_answer_to_a_head_that_did_not_parse_gets_a_json_body_through_any_pipe() {
        let body = r#"{"error":"request header fields too large"}"#;
        let want = format!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\ndate: Mon, 30 Nov 2026 16:00:00 GMT\r\n\r\n{body}",
            body.len()
        );
        for capacity in 1..=want.len() + 1 {
            let got = exchange(capacity, b"GET / HTTP/1.1\r\nX: ", 0, HEAD_431).await;
            assert_eq!(String::from_utf8_lossy(&got), want, "capacity {capacity}");
        }
    }

    #[tokio::test]
    async fn a_services_own_answers_are_left_alone() {
        // An empty 400 written after a call: the service's.
        let own = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(exchange(64, b"GET / HTTP/1.1\r\n\r\n", 1, own).await, own);
        // Other statuses, a head with a body, and one without content-length: 0.
        for answer in [
            &b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(exchange(64, b"x", 0, answer).await, answer);
        }
    }

    #[tokio::test]
    async fn only_a_head_that_answers_no_call_is_rewritten() {
        let (mut client, server) = tokio::io::duplex(4096);
        let calls = Arc::new(Calls::default());
        let mut stream = JsonAutomaticAnswers::new(server, Arc::clone(&calls));
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        let own = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let continue_ = b"HTTP/1.1 100 Continue\r\n\r\n";
        // A call answered 200; one answered an empty 400 after 100 Continue; a call still
        // running; then a head that answers no call.
        drop(calls.start());
        stream.write_all(ok).await.unwrap();
        let call = calls.start();
        stream.write_all(continue_).await.unwrap();
        drop(call);
        stream.write_all(own).await.unwrap();
        let running = calls.start();
        stream.write_all(own).await.unwrap();
        drop(running);
        stream.write_all(own).await.unwrap();
        drop(stream);
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        let out = String::from_utf8(out).unwrap();
        let own = std::str::from_utf8(own).unwrap();
        let want = format!(
            "{}{}{own}{own}HTTP/1.1 400 Bad Request\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: 34\r\n\r\n{{\"error\":\"malformed request head\"}}",
            std::str::from_utf8(ok).unwrap(),
            std::str::from_utf8(continue_).unwrap(),
        );
        assert_eq!(out, want);
    }

    #[tokio::test]
    async fn an_answer_behind_another_in_one_vectored_write_is_rewritten_after_it() {
        let (mut client, server) = tokio::io::duplex(16);
        let calls = Arc::new(Calls::default());
        let mut stream = JsonAutomaticAnswers::new(server, Arc::clone(&calls));
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            client.read_to_end(&mut out).await.unwrap();
            String::from_utf8(out).unwrap()
        });
        drop(calls.start());
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n";
        let body = b"{\"v\":3}";
        let automatic =
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        let mut storage = [
            io::IoSlice::new(head),
            io::IoSlice::new(body),
            io::IoSlice::new(automatic),
        ];
        let mut slices = &mut storage[..];
        while !slices.is_empty() {
            let n = stream.write_vectored(slices).await.unwrap();
            io::IoSlice::advance_slices(&mut slices, n);
        }
        stream.shutdown().await.unwrap();
        drop(stream);
        let want = format!(
            "{}{}HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: 34\r\n\r\n{{\"error\":\"malformed request head\"}}",
            std::str::from_utf8(head).unwrap(),
            std::str::from_utf8(body).unwrap()
        );
        assert_eq!(reader.await.unwrap(), want);
    }

    #[tokio::test]
    async fn a_services_answer_that_waits_for_a_full_pipe_is_still_its_own() {
        let (mut client, server) = tokio::io::duplex(8);
        let calls = Arc::new(Calls::default());
        let mut stream = JsonAutomaticAnswers::new(server, Arc::clone(&calls));
        let body = b"12345678";
        let own = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        drop(calls.start());
        let writer = tokio::spawn(async move {
            // The previous answer's last bytes fill the pipe: the head waits, and is handed
            // back until the client reads.
            stream.write_all(body).await.unwrap();
            stream.write_all(own).await.unwrap();
            stream.shutdown().await.unwrap();
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        writer.await.unwrap();
        let mut want = body.to_vec();
        want.extend_from_slice(own);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }
}
