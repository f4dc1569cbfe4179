//! Idle TLS streams without rustls's buffers. Once a TLS 1.3 connection's first request is
//! a stream request, the relay only ever writes to it: rustls hands over the traffic
//! secrets (`dangerous_extract_secrets`, the way kernel TLS offload takes a connection) and
//! [`Sealed`] writes each frame as one TLS 1.3 application-data record (RFC 8446 section
//! 5.2: AEAD over the frame and its content type, the record header as associated data,
//! the nonce the write IV XOR the record's sequence number). It holds a key and a counter
//! between frames, no buffers, which is what brings an idle TLS stream down to the size of
//! a plain one (docs/BENCHMARKS.md, "idle streams").
//!
//! Nothing is ever decrypted: a client sends nothing on a stream, so any byte from it (its
//! close_notify included) ends the stream, as on plain TCP. TLS 1.2 and connections with
//! TLS output still pending keep rustls ([`seal`] gives them back). A stream ends well
//! before its key would wear out (2^24 records under AES-GCM, RFC 8446 5.5).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ring::aead::{
    AES_128_GCM, AES_256_GCM, Aad, Algorithm, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey,
};
use rustls::ConnectionTrafficSecrets;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Largest plaintext in one record (RFC 8446 5.1).
const MAX_FRAGMENT: usize = 16 * 1024;
/// Records a stream may write before it ends (far below every AEAD's limit).
const MAX_RECORDS: u64 = 1 << 23;
/// Outer content type of every TLS 1.3 protected record.
const APPLICATION_DATA: u8 = 0x17;
/// Inner content type of an alert.
const ALERT: u8 = 0x15;

/// A TLS 1.3 connection that only writes, sealing records itself.
pub(crate) struct Sealed {
    tcp: TcpStream,
    algorithm: &'static Algorithm,
    /// The write key, raw: its expanded form (several hundred bytes) is built per record, as
    /// records are rare on an idle stream and memory is what it holds for its life.
    key: [u8; 32],
    iv: [u8; NONCE_LEN],
    seq: u64,
    /// A sealed record not yet written out (empty, and unallocated, between frames).
    pending: Vec<u8>,
    written: usize,
}

/// What [`seal`] made of a connection.
pub(crate) enum Taken {
    /// Ours now.
    Sealed(Sealed),
    /// Not one to take: rustls keeps it.
    Kept(Box<TlsStream<TcpStream>>),
    /// Taking it failed after rustls let go (should not happen): close it.
    Lost,
}

/// Takes a TLS connection over from rustls when it can be (TLS 1.3, an AEAD suite, no TLS
/// output pending); otherwise gives it back untouched.
pub(crate) fn seal(tls: Box<TlsStream<TcpStream>>) -> Taken {
    let (_, conn) = tls.get_ref();
    if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) || conn.wants_write() {
        return Taken::Kept(tls);
    }
    let (tcp, conn) = tls.into_inner();
    take(tcp, conn).map_or(Taken::Lost, Taken::Sealed)
}

fn take(tcp: TcpStream, conn: rustls::ServerConnection) -> Option<Sealed> {
    let (seq, secrets) = conn.dangerous_extract_secrets().ok()?.tx;
    let (algorithm, key, iv) = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&AES_128_GCM, key, iv),
        ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&AES_256_GCM, key, iv),
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&CHACHA20_POLY1305, key, iv),
        _ => return None,
    };
    let key: [u8; 32] = match key.as_ref().len() {
        16 => {
            let mut padded = [0u8; 32];
            padded[..16].copy_from_slice(key.as_ref());
            padded
        }
        _ => key.as_ref().try_into().ok()?,
    };
    let iv: [u8; NONCE_LEN] = iv.as_ref().try_into().ok()?;
    // Each frame is a record written on its own: Nagle would hold one back for the ACK of
    // the last (40 ms with the peer's delayed ACK).
    tcp.set_nodelay(true).ok()?;
    Some(Sealed { tcp, algorithm, key, iv, seq, pending: Vec::new(), written: 0 })
}

impl Sealed {
    /// Seals `plain` (with its inner content type) as the next record, into `pending`.
    fn seal_record(&mut self, plain: &[u8], content_type: u8) -> io::Result<()> {
        if self.seq >= MAX_RECORDS {
            return Err(io::Error::other("stream key used enough; the client reconnects"));
        }
        let mut nonce = self.iv;
        for (n, s) in nonce[NONCE_LEN - 8..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        let key = UnboundKey::new(self.algorithm, &self.key[..self.algorithm.key_len()])
            .map_err(|_| io::Error::other("a stream key of the wrong length"))?;
        let key = LessSafeKey::new(key);
        let length = plain.len() + 1 + self.algorithm.tag_len();
        let header = [APPLICATION_DATA, 0x03, 0x03, (length >> 8) as u8, length as u8];
        let mut record = Vec::with_capacity(header.len() + length);
        record.extend_from_slice(&header);
        record.extend_from_slice(plain);
        record.push(content_type);
        let mut body = record.split_off(header.len());
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(header), &mut body)
            .map_err(|_| io::Error::other("sealing a record failed"))?;
        record.append(&mut body);
        self.seq += 1;
        self.pending = record;
        self.written = 0;
        Ok(())
    }

    /// Writes out the pending record; frees it once written.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Sealed {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        let take = buf.len().min(MAX_FRAGMENT);
        this.seal_record(&buf[..take], APPLICATION_DATA)?;
        // The record is ours to deliver (flush, or the next write, finishes it).
        let _ = this.poll_pending(cx)?;
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

impl AsyncRead for Sealed {
    /// Never read: the stream ends on any byte from the client (see [`crate::lean::Watch`]).
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::Error::other("a sealed stream is never read")))
    }
}

impl crate::lean::Watch for Sealed {
    async fn readable(&self) {
        crate::lean::watch_tcp(&self.tcp).await
    }
}

impl Drop for Sealed {
    /// Says close_notify (a warning-level alert), best effort: a client can tell the end of
    /// the stream from a cut connection. Then forgets the key.
    fn drop(&mut self) {
        if self.pending.is_empty() && self.seal_record(&[1, 0], ALERT).is_ok() {
            let _ = self.tcp.try_write(&self.pending);
        }
        self.key = [0; 32];
        std::hint::black_box(&self.key); // the wipe is observed, so it is not optimised away
    }
}
