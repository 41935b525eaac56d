//! Which HTTP a connection speaks, told from its first bytes: HTTP/2 by prior knowledge begins
//! with the connection preface, anything else is HTTP/1.1.
//!
//! hyper-util's auto builder tells the same by reading the first bytes into a buffer of its own
//! and giving them back to hyper as a first, short read. hyper's HTTP/1.1 reader then finds its
//! 8 KiB buffer holding part of a request with less than 8 KiB free, and doubles it: most
//! connections kept 16 KiB for their lifetime. Over plain TCP the bytes are peeked here, left in
//! the socket, and hyper reads the whole request at once. Only bytes that had to be read to
//! tell (a part of the preface sent on its own, or anything over TLS, which cannot be peeked)
//! are handed back, through [`Prefixed`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The HTTP/2 connection preface (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    /// The protocol a connection's `first` bytes show, if they show one yet.
    fn of(first: &[u8]) -> Option<Protocol> {
        if !PREFACE.starts_with(first) {
            Some(Protocol::Http1)
        } else if first.len() == PREFACE.len() {
            Some(Protocol::Http2)
        } else {
            None
        }
    }
}

/// Waits for `stream`'s first bytes and tells its protocol, reading from the socket only if
/// the bytes that have come are a part of the preface. Fails if the client closes first.
pub(crate) async fn detect_tcp(stream: TcpStream) -> io::Result<(Protocol, Prefixed<TcpStream>)> {
    let mut first = [0; PREFACE.len()];
    let peeked = stream.peek(&mut first).await?;
    match Protocol::of(&first[..peeked]) {
        Some(protocol) => Ok((protocol, Prefixed::new(stream, first, 0))),
        _ => detect(stream).await,
    }
}

/// Reads `stream`'s first bytes until they tell its protocol (24 bytes at most), and gives
/// them back in front of the rest. Fails if the client closes first.
pub(crate) async fn detect<S: AsyncRead + Unpin>(
    mut stream: S,
) -> io::Result<(Protocol, Prefixed<S>)> {
    let mut first = [0; PREFACE.len()];
    let mut read = 0;
    loop {
        let n = stream.read(&mut first[read..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client closed the connection before its protocol was known",
            ));
        }
        read += n;
        if let Some(protocol) = Protocol::of(&first[..read]) {
            return Ok((protocol, Prefixed::new(stream, first, read)));
        }
    }
}

/// A stream with bytes already read from it put back in front.
pub(crate) struct Prefixed<S> {
    inner: S,
    prefix: [u8; PREFACE.len()],
    /// `prefix[start..end]` is still to be read.
    start: usize,
    end: usize,
}

impl<S> Prefixed<S> {
    fn new(inner: S, prefix: [u8; PREFACE.len()], len: usize) -> Self {
        Prefixed {
            inner,
            prefix,
            start: 0,
            end: len,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.start < this.end {
            let n = (this.end - this.start).min(buf.remaining());
            buf.put_slice(&this.prefix[this.start..this.start + n]);
            this.start += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// Sends `sent` over real TCP in two writes split at `split` (the second after a pause, so
    /// that the server sees the first part on its own), and returns the protocol told and
    /// everything read through the returned stream.
    async fn told(sent: &'static [u8], split: usize) -> io::Result<(Protocol, Vec<u8>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut client = TcpStream::connect(listener.local_addr()?).await?;
        client.set_nodelay(true)?;
        let (server, _) = listener.accept().await?;
        let writing = tokio::spawn(async move {
            client.write_all(&sent[..split]).await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.write_all(&sent[split..]).await?;
            client.shutdown().await
        });
        let (protocol, mut stream) = detect_tcp(server).await?;
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await?;
        writing.await??;
        Ok((protocol, got))
    }

    #[tokio::test]
    async fn the_protocol_is_told_and_no_byte_is_lost_wherever_the_first_bytes_are_split() {
        let mut preface_and_frame = PREFACE.to_vec();
        preface_and_frame.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        let preface_and_frame: &'static [u8] = preface_and_frame.leak();
        let cases: [(&'static [u8], Protocol); 4] = [
            (preface_and_frame, Protocol::Http2),
            (b"POST /sum HTTP/1.1\r\nHost: a\r\n\r\n", Protocol::Http1),
            // Begins as the preface does, then is not one.
            (b"PRI * HTTP/1.1\r\nHost: a\r\n\r\n", Protocol::Http1),
            (b"PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n", Protocol::Http1),
        ];
        for (sent, protocol) in cases {
            for split in 1..sent.len() {
                let (told, got) = told(sent, split).await.unwrap();
                assert_eq!(told, protocol, "{sent:?} split at {split}");
                assert_eq!(got, sent, "{sent:?} split at {split}");
            }
        }
    }

    #[tokio::test]
    async fn a_client_that_closes_within_the_preface_or_at_once_is_an_error() {
        for sent in [&PREFACE[..0], &PREFACE[..1], &PREFACE[..23]] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (server, _) = listener.accept().await.unwrap();
            client.write_all(sent).await.unwrap();
            drop(client);
            let err = detect_tcp(server).await.err().expect("an error");
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{sent:?}");
        }
    }

    #[tokio::test]
    async fn bytes_put_back_come_out_in_pieces_as_small_as_the_reader_asks() {
        let (mut client, server) = tokio::io::duplex(64);
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nrest")
            .await
            .unwrap();
        drop(client);
        let (protocol, mut stream) = detect(server).await.unwrap();
        assert_eq!(protocol, Protocol::Http2);
        let mut got = Vec::new();
        let mut byte = [0; 5];
        loop {
            let n = stream.read(&mut byte).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&byte[..n]);
        }
        assert_eq!(got, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nrest");
    }
}
