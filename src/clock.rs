//! Where the loops of the schedules and policies take the time from: the
//! system's clock in production, a clock moved by hand in tests, so a test
//! drives them across slots, windows and daylight-saving changes without
//! waiting.

use chrono::{DateTime, Utc};

/// Where the time comes from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
