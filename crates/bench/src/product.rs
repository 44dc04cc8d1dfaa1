//! Everything the benchmark takes from the operator's library, in one
//! place: the operator's loop and configuration, its AWS clients and rate
//! limits, its store trait and its stores (embedded, DynamoDB, either
//! behind one type), and the SDK fixture the sandbox uses too. When the
//! library's surface moves, the benchmark's imports of it change here alone.

pub use ecs_recycler::Metrics;
pub use ecs_recycler::operator::http_get;
pub use ecs_recycler::operator::{EventsConfig, Operator, OperatorConfig, bound_allocator_arenas};
pub use ecs_recycler::sandbox::fixture::{
    FixtureError, client_config, create_service, steady, wait_steady,
};
pub use ecs_recycler::sdk::{Timeouts, with_timeouts};
pub use ecs_recycler::store::any::AnyStore;
pub use ecs_recycler::store::dynamo::DynamoStore;
pub use ecs_recycler::store::embedded::EmbeddedStore;
pub use ecs_recycler::store::{
    Kind, Lease, ListedRecord, STRAY, StatusWrite, Store, StoreError, StoreResult, StoredRecord,
    Stray, status_phase,
};
pub use ecs_recycler::{ApiShare, Quota};
pub use ecs_recycler::{ClientPool, PolicyLoop, SystemClock, classify};
