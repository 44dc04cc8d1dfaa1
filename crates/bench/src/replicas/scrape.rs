//! What one replica's `/metrics` says, read as the scenario reads it:
//! each series by the value of one of its labels, or one series alone.

use std::collections::BTreeMap;

/// One replica's `/metrics`, line by line: (series with its labels, value).
pub(super) struct Scrape(Vec<(String, f64)>);

impl Scrape {
    pub(super) fn parse(body: &str) -> Self {
        Self(
            body.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (series, value) = l.rsplit_once(' ')?;
                    Some((series.to_string(), value.parse().ok()?))
                })
                .collect(),
        )
    }

    /// The values of the series named `name`, by the value of their label `key`.
    pub(super) fn by(&self, name: &str, key: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let needle = format!("{key}=\"");
        for (series, value) in &self.0 {
            let Some(labels) = series
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('{'))
            else {
                continue;
            };
            let Some(at) = labels.find(&needle) else {
                continue;
            };
            let rest = &labels[at + needle.len()..];
            let label = rest.split('"').next().unwrap_or("").to_string();
            *out.entry(label).or_default() += value;
        }
        out
    }

    /// The value of the series exactly `series` (no labels), or 0.
    pub(super) fn one(&self, series: &str) -> f64 {
        self.0
            .iter()
            .filter(|(s, _)| s == series)
            .map(|(_, v)| v)
            .sum()
    }
}
