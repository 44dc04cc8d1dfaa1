//! The campaign's short set in `cargo test`: a few fixed seeds over the
//! real binaries (the simulator, moto, one to three operator replicas),
//! every invariant checked after each. Any violation fails the test with
//! the seed, its schedule and the command that replays it.

use ecs_recycler_campaign::{Seeds, binary, campaign, report};

/// The seeds `cargo test` runs: 1 to 6 (both stores, every fault kind
/// the catalogue draws; see docs/failure-model.md).
pub const SHORT: Seeds = Seeds {
    first: 1,
    count: Some(6),
    duration: None,
    jobs: 1,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_short_set_of_seeds_keeps_every_invariant() {
    let binary = binary::product_binary(None).expect("the product's binary");
    let outcomes = campaign(binary, SHORT, true, false).await.expect("the campaign runs");
    let table = report::table(&outcomes);
    println!("{table}");
    let found: Vec<String> = outcomes
        .iter()
        .map(report::findings)
        .filter(|f| !f.is_empty())
        .collect();
    assert!(found.is_empty(), "{}\n{table}", found.join("\n"));
}
