//! A real SMTP server on loopback for the notification tests: aiosmtpd from
//! the pinned venv, STARTTLS and AUTH required, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub struct SmtpServer {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl SmtpServer {
    /// Starts it with `user`/`password`; the first `fail_first` messages get
    /// a temporary refusal (451).
    pub fn start(dir: PathBuf, user: &str, password: &str, fail_first: u32) -> Self {
        let python = super::python();
        let mut child = Command::new(&python)
            .arg(super::script("smtp_server.py"))
            .arg(&dir)
            .args([user, password, &fail_first.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {} smtp_server.py: {e}", python.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the SMTP port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("smtp_server.py printed {line:?}, not a port"));
        Self { port, dir, child }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The messages accepted so far.
    pub fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("messages.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
