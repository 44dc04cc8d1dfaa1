//! Bad networks on loopback: a TCP proxy that can stall (delay, never
//! alter) the traffic to and from its upstream — at once, or from the first
//! request that carries given bytes, which itself gets through and only its
//! answer is late — and a listener that accepts
//! connections and never answers (a half-open connection, a black-holed
//! route, a stalled proxy).

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// A listener that takes every connection, reads what is sent and never
/// answers, until dropped.
pub struct Silent {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Silent {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                    // Held open by the peer's side only: the read loop ends at its close.
                });
            }
        });
        Self { addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct Stall {
    /// Answers read from upstream before this instant are delayed by `delay`.
    until: Option<Instant>,
    delay: Duration,
    /// Bytes that, all in one request, start a stall of `window`.
    trigger: Option<(Vec<Vec<u8>>, Duration, Duration)>,
    triggered: Option<Instant>,
}

impl Stall {
    fn delay_now(&self) -> Duration {
        match self.until {
            Some(until) if Instant::now() < until => self.delay,
            _ => Duration::ZERO,
        }
    }
}

/// A proxy to `upstream` on a free loopback port.
pub struct Proxy {
    pub addr: SocketAddr,
    stall: Arc<Mutex<Stall>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stall = Arc::new(Mutex::new(Stall::default()));
        let shared = stall.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let stall = shared.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        carry(client, server, stall).await;
                    }
                });
            }
        });
        Self { addr, stall, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// For the next `window`, holds every request until the window ends and
    /// delays every answer by `delay`.
    pub fn stall(&self, delay: Duration, window: Duration) {
        let mut s = self.stall.lock();
        s.delay = delay;
        s.until = Some(Instant::now() + window);
    }

    /// From the first request that holds every one of `needles` (which goes
    /// through at once), stalls for `window` as [`Proxy::stall`] does, that
    /// request's own answer delayed first.
    pub fn stall_after(&self, needles: &[&str], delay: Duration, window: Duration) {
        let mut s = self.stall.lock();
        let needles = needles.iter().map(|n| n.as_bytes().to_vec()).collect();
        s.trigger = Some((needles, delay, window));
        s.triggered = None;
    }

    /// Disarms a [`Proxy::stall_after`] whose request has not come.
    pub fn disarm(&self) {
        self.stall.lock().trigger = None;
    }

    /// When the armed request went through, if it did.
    pub fn triggered(&self) -> Option<Instant> {
        self.stall.lock().triggered
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways; answers wait out the stall in the order they came.
async fn carry(client: TcpStream, server: TcpStream, stall: Arc<Mutex<Stall>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let watch = stall.clone();
    let up = async move {
        // The tail of the previous read, so bytes split across reads are found.
        let mut seen: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            seen.extend_from_slice(&buf[..n]);
            // During a stall nothing gets through either way: a request sent
            // then reaches the store only once the stall is over.
            let held = watch.lock().until.filter(|u| Instant::now() < *u);
            if let Some(until) = held {
                tokio::time::sleep_until(until).await;
            }
            {
                let mut s = watch.lock();
                let hit = s.trigger.as_ref().is_some_and(|(needles, _, _)| {
                    needles
                        .iter()
                        .all(|n| seen.windows(n.len()).any(|w| w == n.as_slice()))
                });
                if hit && let Some((_, delay, window)) = s.trigger.take() {
                    s.delay = delay;
                    s.until = Some(Instant::now() + window);
                    s.triggered = Some(Instant::now());
                }
            }
            // A request is at most a few kilobytes: keep the last 64 KiB.
            if seen.len() > 64 * 1024 {
                seen.drain(..seen.len() - 64 * 1024);
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let down_read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let release = Instant::now() + stall.lock().delay_now();
            if sender.send((release, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    let down_write = async move {
        while let Some((release, bytes)) = receiver.recv().await {
            tokio::time::sleep_until(release).await;
            if client_write.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down_read, down_write);
}
