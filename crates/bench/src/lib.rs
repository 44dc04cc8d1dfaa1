//! The benchmark's pieces that its own tests reach as well as its binary:
//! the operator's library as the benchmark takes it ([`product`]), and the
//! in-memory store its scenarios run on ([`memory_store`]), which
//! `tests/store_contract.rs` holds to the store contract. The scenarios
//! themselves are the binary's (`main.rs`).

pub mod memory_store;
pub mod product;
