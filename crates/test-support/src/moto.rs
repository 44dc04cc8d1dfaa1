//! moto's server as a stand-in for DynamoDB (and SNS, Secrets Manager,
//! CloudWatch): one private process per test or benchmark run on a free
//! loopback port, started from the pinned venv ([`crate::python`]) and
//! killed when dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to answer its first request (it imports every
/// service backend on start, which is slow on a busy two-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Moto {
    pub url: String,
    child: Child,
    log: PathBuf,
}

impl Moto {
    /// Starts `python -m moto.server` from the pinned environment and waits
    /// until it answers HTTP; panics, with moto's own output, if it does not.
    pub fn start() -> Self {
        let python = crate::python();
        let port = free_port();
        let log = crate::project_root()
            .join("target")
            .join("tmp")
            .join(format!("moto-{port}.log"));
        std::fs::create_dir_all(log.parent().expect("log dir")).expect("target/tmp");
        // A file, not a pipe: nobody reads moto's request log while the test
        // runs, and a full pipe would stall the server.
        let output = std::fs::File::create(&log).expect("moto log file");
        let child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("moto log file"))
            .stderr(output)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {} -m moto.server: {e}", python.display()));
        let mut moto = Moto {
            url: format!("http://127.0.0.1:{port}"),
            child,
            log,
        };
        moto.wait_until_answering(port);
        moto
    }

    fn wait_until_answering(&mut self, port: u16) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if answers_http(port) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "moto.server exited ({status}) before answering on port {port}:\n{}",
                    self.output()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "moto.server did not answer HTTP on port {port} within {START_TIMEOUT:?}:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its process id, to read its CPU time in /proc (the benchmark does).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What moto printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A port nobody listens on now. Another process could take it before moto
/// binds it; on a test machine that race is rare enough.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// True once something on `port` answers a request with an HTTP status line.
fn answers_http(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}
