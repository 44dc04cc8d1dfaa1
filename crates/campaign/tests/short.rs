//! The campaign's short set in `cargo test`: a few fixed seeds over the
//! real binaries (the simulator, moto, one to three operator replicas),
//! every invariant checked after each. Any violation fails the test with
//! the seed, its schedule and the command that replays it.

use ecs_recycler_campaign::{Seeds, binary, campaign, report};

/// The seeds `cargo test` runs (docs/failure-model.md says what each
/// holds): both stores, one to three replicas, every kind of fault, the
/// event feed, Spot and EC2 services, every strategy and protection policy.
pub const SHORT: [u64; 7] = [1, 2, 18, 31, 39, 41, 79];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_short_set_of_seeds_keeps_every_invariant() {
    let binary = binary::product_binary(None).expect("the product's binary");
    let seeds = Seeds {
        first: 0,
        count: None,
        duration: None,
        // Two at once, as long runs go: near two minutes for the seven.
        jobs: 2,
        list: Some(SHORT.to_vec()),
    };
    let outcomes = campaign(binary, seeds, true, false)
        .await
        .expect("the campaign runs");
    let table = report::table(&outcomes);
    println!("{table}");
    let found: Vec<String> = outcomes
        .iter()
        .map(report::findings)
        .filter(|f| !f.is_empty())
        .collect();
    assert!(found.is_empty(), "{}\n{table}", found.join("\n"));
}
