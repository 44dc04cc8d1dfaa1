//! A `RecycleRequest`, one recycle of one service: what a person asks for
//! ([`spec`]), what the operator writes back ([`status`]), what it sees of
//! the service ([`observation`]) and what each look is to find ([`look`]),
//! the pure decision of the next step
//! ([`decide`]), the notices a change of status makes ([`notices`]), when
//! to look again ([`pacing`]), what ECS's own events hint of a step
//! ([`hints`]), the dry run that rehearses the decision ([`preview`]) and
//! the run's shape in time kept in its status ([`timeline`]).
//!
//! The one thing to know before touching it: nothing here does I/O or reads
//! a clock. The operator (the shell) observes, persists and acts; here a
//! status, an observation and a time go in, and a decision comes out.

pub(crate) mod decide;
pub(crate) mod hints;
pub(crate) mod look;
pub(crate) mod notices;
pub(crate) mod observation;
pub(crate) mod pacing;
pub(crate) mod preview;
pub(crate) mod spec;
pub(crate) mod status;
pub(crate) mod strategy;
pub(crate) mod timeline;
