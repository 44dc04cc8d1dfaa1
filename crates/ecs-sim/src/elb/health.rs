//! A target's health checks over time, in closed form: from when checking
//! began, the interval and thresholds, and from when the target answers
//! checks, the moments its state changes — so a state at any time costs
//! nothing to compute, however long the simulator has run.

/// What the health checks make of a target, with ELB's reason codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `initial`, `Elb.RegistrationInProgress`: before the first check.
    Registering,
    /// `initial`, `Elb.InitialHealthChecking`.
    InitialChecks,
    Healthy,
    Unhealthy,
}

/// The health checks of one registration.
#[derive(Clone, Copy, Debug)]
pub struct Checks {
    /// When checking began: registration, or the target group's first use.
    pub origin: f64,
    /// Seconds between checks (already divided by the time scale).
    pub interval: f64,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// From when the target passes checks; `None`: never.
    pub passes_from: Option<f64>,
}

impl Checks {
    fn at(&self, k: u64) -> f64 {
        self.origin + k as f64 * self.interval
    }

    /// Every change of verdict, in time order, starting at `origin`.
    pub fn changes(&self) -> Vec<(f64, Verdict)> {
        let h = u64::from(self.healthy_threshold.max(2));
        let u = u64::from(self.unhealthy_threshold.max(2));
        // ELB's thresholds are at least 2, so the first check never settles.
        let mut out = vec![
            (self.origin, Verdict::Registering),
            (self.at(1), Verdict::InitialChecks),
        ];
        // The first check that passes; all before it fail.
        let first_pass = self.passes_from.map(|p| {
            let k = ((p - self.origin) / self.interval).ceil();
            if k.is_finite() && k > 1.0 {
                k as u64
            } else {
                1
            }
        });
        match first_pass {
            None => out.push((self.at(u), Verdict::Unhealthy)),
            Some(p) => {
                if p > u {
                    out.push((self.at(u), Verdict::Unhealthy));
                }
                out.push((self.at(p + h - 1), Verdict::Healthy));
            }
        }
        out
    }

    /// The verdict at `t` and since when it holds; `None` before `origin`.
    pub fn verdict_at(&self, t: f64) -> Option<(Verdict, f64)> {
        self.changes()
            .into_iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map(|(at, v)| (v, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(passes_from: Option<f64>) -> Checks {
        Checks {
            origin: 10.0,
            interval: 5.0,
            healthy_threshold: 3,
            unhealthy_threshold: 2,
            passes_from,
        }
    }

    #[test]
    fn a_good_target_turns_healthy_after_the_healthy_threshold_of_checks() {
        let c = checks(Some(10.0));
        assert_eq!(c.verdict_at(9.0), None);
        assert_eq!(c.verdict_at(12.0), Some((Verdict::Registering, 10.0)));
        assert_eq!(c.verdict_at(20.0), Some((Verdict::InitialChecks, 15.0)));
        // Checks at 15, 20, 25 pass: healthy at the third.
        assert_eq!(
            c.verdict_at(24.9).map(|v| v.0),
            Some(Verdict::InitialChecks)
        );
        assert_eq!(c.verdict_at(25.0), Some((Verdict::Healthy, 25.0)));
    }

    #[test]
    fn a_target_that_never_passes_is_unhealthy_after_the_unhealthy_threshold() {
        let c = checks(None);
        assert_eq!(
            c.verdict_at(19.9).map(|v| v.0),
            Some(Verdict::InitialChecks)
        );
        assert_eq!(c.verdict_at(1e6), Some((Verdict::Unhealthy, 20.0)));
    }

    #[test]
    fn a_late_target_is_unhealthy_first_then_healthy() {
        // Passes from 31: checks at 15..30 fail (unhealthy at 20), 35, 40, 45 pass.
        let c = checks(Some(31.0));
        assert_eq!(c.verdict_at(21.0), Some((Verdict::Unhealthy, 20.0)));
        assert_eq!(c.verdict_at(45.0), Some((Verdict::Healthy, 45.0)));
        // Late by less than the unhealthy threshold: initial all along.
        let c = checks(Some(16.0));
        assert_eq!(
            c.verdict_at(29.0).map(|v| v.0),
            Some(Verdict::InitialChecks)
        );
        assert_eq!(c.verdict_at(30.0), Some((Verdict::Healthy, 30.0)));
    }
}
