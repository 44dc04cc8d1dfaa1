//! Gates: CloudWatch alarms that hold a run before its next stop, or end it
//! through Restoring, while the service suffers — the safety net
//! CodeDeploy's alarm rollback gives a deployment, for a recycle that is
//! not one.
//!
//! The pieces, as every concern here: what a person writes ([`spec`]), the
//! pure verdict over the alarms seen ([`decide`]), the one CloudWatch call
//! that sees them ([`observe`]), and what the dry run says of them
//! ([`preview`]). The request's decision
//! (`request::decide::gates`) applies the verdict phase by phase.
//!
//! The one thing to know before touching it: a gate fails closed. Alarms
//! that could not be read hold the run exactly as an alarm in ALARM does;
//! only a verdict of "every gate alarm is OK" lets a task be stopped.

pub(crate) mod decide;
pub(crate) mod observe;
pub(crate) mod preview;
pub(crate) mod spec;
