//! The operator's notification settings: the SMTP relay and its
//! credentials (flags and environment, or a Secrets Manager secret), the CA
//! to trust for it, and how hard to retry. Credentials live only here and in
//! the secret: never in a record, never in a log (`Debug` redacts them).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;

/// The flags of `ecs-recycler operator` for notifications.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct NotifyArgs {
    /// SMTP relay for email notifications; STARTTLS is required.
    #[arg(long, value_name = "HOST", env = "ECS_RECYCLER_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// The relay's submission port (default 587).
    #[arg(long, value_name = "PORT", env = "ECS_RECYCLER_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// The sender of notification emails, like "Recycler <recycler@example.com>".
    #[arg(long, value_name = "ADDRESS", env = "ECS_RECYCLER_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// The relay's user name; the password comes from ECS_RECYCLER_SMTP_PASSWORD
    /// (never a flag, so it shows in no process listing) or from --smtp-secret.
    #[arg(long, value_name = "NAME", env = "ECS_RECYCLER_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    /// A Secrets Manager secret (name or ARN) whose JSON holds any of host,
    /// port, username, password and from (or the original Lambda's from_email); its
    /// fields win over the flags. Read when an email is sent, kept 5 minutes.
    #[arg(long, value_name = "SECRET", env = "ECS_RECYCLER_SMTP_SECRET")]
    pub smtp_secret: Option<String>,
    /// PEM file of CA certificates to trust for the relay, besides the system's.
    #[arg(long, value_name = "PATH", env = "ECS_RECYCLER_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
    /// Delivery attempts per notification before it is given up.
    #[arg(long, default_value_t = 6, env = "ECS_RECYCLER_NOTIFY_ATTEMPTS")]
    pub notify_attempts: u32,
    /// The first pause between attempts; it doubles each time (jittered), up to 5 minutes.
    #[arg(long, default_value = "5s", value_parser = crate::duration::parse, env = "ECS_RECYCLER_NOTIFY_BACKOFF")]
    pub notify_backoff: Duration,
}

/// The environment variable holding the relay's password.
pub(crate) const PASSWORD_ENV: &str = "ECS_RECYCLER_SMTP_PASSWORD";

/// The relay's settings; any may be missing until the secret fills them in.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub from: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl SmtpSettings {
    /// These settings with every field `over` has taken from it.
    pub fn overlaid(&self, over: &SmtpSettings) -> SmtpSettings {
        SmtpSettings {
            host: over.host.clone().or_else(|| self.host.clone()),
            port: over.port.or(self.port),
            from: over.from.clone().or_else(|| self.from.clone()),
            username: over.username.clone().or_else(|| self.username.clone()),
            password: over.password.clone().or_else(|| self.password.clone()),
        }
    }

    /// Reads a secret's JSON: host, port (number or text), username,
    /// password, from or from_email. Other keys are ignored. The error never
    /// quotes the secret.
    pub fn from_secret(text: &str) -> Result<SmtpSettings, String> {
        let v: Value = serde_json::from_str(text)
            .map_err(|_| "is not a JSON object (its text is not shown)".to_string())?;
        let Some(o) = v.as_object() else {
            return Err("is not a JSON object".into());
        };
        let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        let port = match o.get("port") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        if o.get("port").is_some_and(|p| !p.is_null()) && port.is_none() {
            return Err("has a port that is not a number from 1 to 65535".into());
        }
        Ok(SmtpSettings {
            host: text("host"),
            port,
            from: text("from").or_else(|| text("from_email")),
            username: text("username"),
            password: text("password"),
        })
    }

    /// What is still missing to send an email, as a sentence.
    pub fn missing(&self) -> Option<String> {
        let mut missing = Vec::new();
        if self.host.is_none() {
            missing.push("the relay host (--smtp-host or host in the secret)");
        }
        if self.from.is_none() {
            missing.push("the sender (--smtp-from or from in the secret)");
        }
        if self.username.is_some() && self.password.is_none() {
            missing.push("the password (ECS_RECYCLER_SMTP_PASSWORD or password in the secret)");
        }
        (!missing.is_empty()).then(|| missing.join(", "))
    }
}

/// Everything the notifier needs, checked.
#[derive(Clone, Debug)]
pub struct NotifyConfig {
    pub smtp: SmtpSettings,
    pub smtp_secret: Option<String>,
    /// PEM certificates to trust for the relay.
    pub smtp_ca: Option<Vec<u8>>,
    pub attempts: u32,
    pub backoff: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            smtp: SmtpSettings::default(),
            smtp_secret: None,
            smtp_ca: None,
            attempts: 6,
            backoff: Duration::from_secs(5),
        }
    }
}

impl NotifyArgs {
    /// The checked settings, or every problem with the flags (each naming its flag).
    pub fn config(&self) -> Result<NotifyConfig, Vec<String>> {
        let mut problems = Vec::new();
        let password = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty());
        let smtp = SmtpSettings {
            host: self.smtp_host.clone().filter(|h| !h.trim().is_empty()),
            port: self.smtp_port,
            from: self.smtp_from.clone(),
            username: self.smtp_username.clone(),
            password,
        };
        if let Some(from) = &smtp.from
            && let Err(e) = lettre::message::Mailbox::from_str(from)
        {
            problems.push(format!(
                "--smtp-from {from:?} is not an email address ({e}); write it like recycler@example.com"
            ));
        }
        if smtp.port == Some(0) {
            problems.push("--smtp-port must be from 1 to 65535".into());
        }
        if self.smtp_secret.is_none()
            && smtp.host.is_some()
            && let Some(missing) = smtp.missing()
        {
            problems.push(format!("email notifications need {missing}"));
        }
        let smtp_ca = match &self.smtp_ca_file {
            None => None,
            Some(path) => match std::fs::read(path) {
                Ok(pem) if lettre::transport::smtp::client::Certificate::from_pem(&pem).is_ok() => {
                    Some(pem)
                }
                Ok(_) => {
                    problems.push(format!(
                        "--smtp-ca-file {}: holds no PEM certificate",
                        path.display()
                    ));
                    None
                }
                Err(e) => {
                    problems.push(format!("--smtp-ca-file {}: {e}", path.display()));
                    None
                }
            },
        };
        if self.notify_attempts == 0 {
            problems.push("--notify-attempts must be at least 1".into());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(NotifyConfig {
            smtp,
            smtp_secret: self.smtp_secret.clone(),
            smtp_ca,
            attempts: self.notify_attempts,
            backoff: self.notify_backoff,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_in_the_original_lambdas_shape_is_read_and_wins_over_flags() {
        let secret = SmtpSettings::from_secret(
            r#"{"host": "smtp.example.com", "port": "587", "username": "user@example.com",
                "password": "p4ss", "from_email": "noreply@example.com", "note": "x"}"#,
        )
        .unwrap();
        let flags = SmtpSettings {
            host: Some("other".into()),
            port: Some(2525),
            ..Default::default()
        };
        let s = flags.overlaid(&secret);
        assert_eq!(s.host.as_deref(), Some("smtp.example.com"));
        assert_eq!(s.port, Some(587));
        assert_eq!(s.from.as_deref(), Some("noreply@example.com"));
        assert_eq!(s.missing(), None);
        assert!(
            !format!("{s:?}").contains("p4ss"),
            "Debug redacts the password"
        );
    }

    #[test]
    fn secret_errors_never_quote_the_secret() {
        let e = SmtpSettings::from_secret("password=hunter2").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = SmtpSettings::from_secret(r#"{"port": "x"}"#).unwrap_err();
        assert!(e.contains("port"), "{e}");
    }

    #[test]
    fn flags_are_checked() {
        let args = NotifyArgs {
            smtp_host: Some("smtp.example.com".into()),
            smtp_from: Some("not an address".into()),
            smtp_ca_file: Some("/nonexistent/ca.pem".into()),
            notify_attempts: 0,
            ..Default::default()
        };
        let problems = args.config().unwrap_err().join("\n");
        assert!(
            problems.contains("--smtp-from \"not an address\""),
            "{problems}"
        );
        assert!(
            problems.contains("--smtp-ca-file /nonexistent/ca.pem"),
            "{problems}"
        );
        assert!(problems.contains("--notify-attempts"), "{problems}");
    }
}
