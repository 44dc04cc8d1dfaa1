//! A loopback TCP proxy in front of moto, one per replica, that counts the
//! replica's DynamoDB calls by operation (from each request's
//! `X-Amz-Target` header) and the bytes answered: moto's own log names
//! neither the caller nor the operation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::BenchError;
use crate::harness::failed;

/// What precedes the operation's name in a DynamoDB request, lowercased.
const TARGET: &[u8] = b"x-amz-target: dynamodb_20120810.";

/// Bytes of one read kept for the next, so a header cut between two reads
/// is still found: longer than the header and any operation's name.
const CARRY: usize = 128;

#[derive(Default)]
struct Counts {
    calls: Mutex<BTreeMap<String, u64>>,
    answered: AtomicU64,
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

    /// Calls so far, by operation (`Query`, `UpdateItem`, ...).
    pub fn calls(&self) -> BTreeMap<String, u64> {
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

/// Copies both ways until either side closes, counting as it goes.
async fn forward(client: TcpStream, server: TcpStream, counts: Arc<Counts>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = {
        let counts = counts.clone();
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
                count_targets(&seen, carried, &counts);
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
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(requests, answers);
}

/// Counts the headers in `seen` whose line ends past `carried` (those
/// ending before it were counted with the previous read).
fn count_targets(seen: &[u8], carried: usize, counts: &Counts) {
    let mut from = 0;
    while let Some(at) = find(&seen[from..], TARGET) {
        let name_start = from + at + TARGET.len();
        let Some(len) = seen[name_start..].iter().position(|b| *b == b'\r') else {
            // The line goes on in the next read, which still holds it.
            return;
        };
        let end = name_start + len;
        if end >= carried {
            let name = String::from_utf8_lossy(&seen[name_start..end]).to_string();
            if let Ok(mut calls) = counts.calls.lock() {
                *calls.entry(name).or_default() += 1;
            }
        }
        from = end;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_cut_between_two_reads_is_counted_once() {
        let counts = Counts::default();
        let request = b"post / http/1.1\r\nx-amz-target: dynamodb_20120810.query\r\n\r\n";
        let (first, second) = request.split_at(40);
        let mut seen = first.to_vec();
        count_targets(&seen, 0, &counts);
        let carried = seen.len();
        seen.extend_from_slice(second);
        count_targets(&seen, carried, &counts);
        // The next read: the header is in the carried bytes only.
        let carried = seen.len();
        seen.extend_from_slice(b"post / http/1.1\r\n");
        count_targets(&seen, carried, &counts);
        assert_eq!(counts.calls.lock().unwrap().get("query"), Some(&1));
    }
}
