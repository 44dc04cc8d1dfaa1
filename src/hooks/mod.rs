//! Hooks: webhooks asked at named points of a run (before it starts,
//! before and after each batch, after it ends) whose answer lets the run go
//! on, holds it (`inProgress`, asked again after `retryAfter`) or ends it
//! through Restoring (`failed`) — the lifecycle hooks ECS gives a
//! deployment, for a recycle that is not one.
//!
//! The pieces: what a person writes ([`spec`]), what the status records of a call ([`record`]), the pure verdict over the
//! call on record ([`decide`]), the one HTTP call, signed ([`call`]), and
//! what the dry run says of them ([`preview`]).
//! The request's decision (`request::decide::hooks`) asks for them at
//! each point.
//!
//! The one thing to know before touching it: a call is on record, with its
//! idempotency key, before it is made, and its answer is recorded after. A
//! crash in between repeats the call with the same key; it never skips it.

pub(crate) mod call;
pub(crate) mod decide;
pub(crate) mod preview;
pub(crate) mod record;
pub(crate) mod spec;

/// The header holding `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub(crate) const SIGNATURE_HEADER: &str = "X-Ecs-Recycler-Signature";
/// The header holding the call's idempotency key (also in the body).
pub(crate) const IDEMPOTENCY_HEADER: &str = "X-Ecs-Recycler-Idempotency-Key";
