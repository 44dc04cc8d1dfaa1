//! A loopback TCP proxy in front of moto, one per replica, that counts the
//! replica's DynamoDB calls by operation (from each request's
//! `X-Amz-Target` header), how long moto took to start answering them, and
//! the bytes answered: moto's own log names neither the caller nor the
//! operation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::BenchError;
use crate::harness::failed;

/// What precedes the operation's name in a DynamoDB request, lowercased.
const TARGET: &[u8] = b"x-amz-target: dynamodb_20120810.";

/// Bytes of one read kept for the next, so a header cut between two reads
/// is still found: longer than the header and any operation's name.
const CARRY: usize = 128;

/// One operation's calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct Calls {
    pub sent: u64,
    /// Calls whose answer began, and the seconds from each request to the
    /// first byte of its answer, summed.
    pub answered: u64,
    pub seconds: f64,
}

#[derive(Default)]
struct Counts {
    calls: Mutex<BTreeMap<String, Calls>>,
    answered: AtomicU64,
}

impl Counts {
    fn sent(&self, op: &str) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.entry(op.to_string()).or_default().sent += 1;
        }
    }

    fn answered(&self, op: &str, seconds: f64) {
        if let Ok(mut calls) = self.calls.lock() {
            let c = calls.entry(op.to_string()).or_default();
            c.answered += 1;
            c.seconds += seconds;
        }
    }
}

pub struct CountingProxy {
    pub url: String,
    counts: Arc<Counts>,
    accept: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Result<Self, BenchError> {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| failed("bind the store proxy", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| failed("bind the store proxy", e))?;
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, counts) = (upstream.clone(), shared.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        forward(client, server, counts).await;
                    }
                });
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            counts,
            accept,
        })
    }

    /// Calls so far, by operation (`query`, `updateitem`, ...: lowercased).
    pub fn calls(&self) -> BTreeMap<String, Calls> {
        self.counts
            .calls
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Bytes moto answered so far.
    pub fn answered(&self) -> u64 {
        self.counts.answered.load(Ordering::Relaxed)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies both ways until either side closes, counting as it goes. The SDK
/// sends one request at a time on a connection (HTTP/1.1, no pipelining),
/// so the first answer bytes after a request are its answer's.
async fn forward(client: TcpStream, server: TcpStream, counts: Arc<Counts>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let waiting: Arc<Mutex<Option<(String, Instant)>>> = Arc::default();
    let requests = {
        let (counts, waiting) = (counts.clone(), waiting.clone());
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut seen: Vec<u8> = Vec::new();
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let carried = seen.len();
                seen.extend(buf[..n].iter().map(u8::to_ascii_lowercase));
                for op in targets(&seen, carried) {
                    counts.sent(&op);
                    if let Ok(mut w) = waiting.lock() {
                        *w = Some((op, Instant::now()));
                    }
                }
                let keep = seen.len().saturating_sub(CARRY);
                seen.drain(..keep);
                if server_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = server_write.shutdown().await;
        }
    };
    let answers = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            counts.answered.fetch_add(n as u64, Ordering::Relaxed);
            let answered = waiting.lock().ok().and_then(|mut w| w.take());
            if let Some((op, since)) = answered {
                counts.answered(&op, since.elapsed().as_secs_f64());
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(requests, answers);
}

/// The operations named by the headers in `seen` whose line ends past
/// `carried` (those ending before it were found in the previous read).
fn targets(seen: &[u8], carried: usize) -> Vec<String> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = find(&seen[from..], TARGET) {
        let name_start = from + at + TARGET.len();
        let Some(len) = seen[name_start..].iter().position(|b| *b == b'\r') else {
            // The line goes on in the next read, which still holds it.
            break;
        };
        let end = name_start + len;
        if end >= carried {
            found.push(String::from_utf8_lossy(&seen[name_start..end]).to_string());
        }
        from = end;
    }
    found
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_cut_between_two_reads_is_found_once() {
        let request = b"post / http/1.1\r\nx-amz-target: dynamodb_20120810.query\r\n\r\n";
        let (first, second) = request.split_at(40);
        let mut seen = first.to_vec();
        assert!(targets(&seen, 0).is_empty());
        let carried = seen.len();
        seen.extend_from_slice(second);
        assert_eq!(targets(&seen, carried), ["query"]);
        // The next read: the header is in the carried bytes only.
        let carried = seen.len();
        seen.extend_from_slice(b"post / http/1.1\r\n");
        assert!(targets(&seen, carried).is_empty());
    }
}
