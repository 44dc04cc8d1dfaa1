//! Cron expressions as people write them in crontab: five fields (minute,
//! hour, day of month, month, day of week) and the nicknames, read with
//! croner, refused with a sentence that says how to write one. Schedules
//! and policies' windows both use them.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Standard crontab syntax: five fields, no seconds, no year; `@daily` and
/// the other nicknames too. Day of month and day of week match either one
/// (Vixie cron's OR), as crontab and Kubernetes do.
fn cron_parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
}

/// Reads `text` as a cron expression, refusing one that never matches a date.
pub(crate) fn parse_cron(text: &str) -> Result<Cron, String> {
    let hint =
        "write five fields, minute hour day-of-month month day-of-week, like \"0 3 * * SUN\"";
    let cron = cron_parser()
        .parse(text)
        .map_err(|e| format!("{text:?} is not a cron expression ({e}); {hint}"))?;
    // A pattern such as 30 February parses but never comes.
    let probe = DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or_default();
    cron.find_next_occurrence(&probe, false)
        .map_err(|_| format!("{text:?} never matches a date; {hint}"))?;
    Ok(cron)
}
