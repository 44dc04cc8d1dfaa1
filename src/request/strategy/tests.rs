//! The arithmetic of each shape, and how a strategy is read and refused.

use super::*;

fn canary(first: Amount) -> Strategy {
    Strategy::Canary {
        first,
        bake: Duration::from_secs(300),
    }
}

fn linear(step: Amount) -> Strategy {
    Strategy::Linear {
        step,
        every: Duration::from_secs(60),
    }
}

#[test]
fn batch_sizes_for_1_7_10_and_200_tasks() {
    // (strategy, batchSize, planned) → the sizes of every batch.
    let cases: Vec<(Strategy, u32, usize, Vec<usize>)> = vec![
        (Strategy::Batches, 1, 1, vec![1]),
        (Strategy::Batches, 3, 7, vec![3, 3, 1]),
        (Strategy::Batches, 3, 10, vec![3, 3, 3, 1]),
        (canary(Amount::Tasks(1)), 2, 1, vec![1]),
        (canary(Amount::Tasks(1)), 2, 7, vec![1, 2, 2, 2]),
        (canary(Amount::Percent(10)), 3, 10, vec![1, 3, 3, 3]),
        // 10% of 7 is 0.7: rounded up to one task.
        (canary(Amount::Percent(10)), 3, 7, vec![1, 3, 3]),
        (
            canary(Amount::Percent(10)),
            50,
            200,
            vec![20, 50, 50, 50, 30],
        ),
        (linear(Amount::Percent(10)), 1, 1, vec![1]),
        // A tenth of 7, rounded up, is one task: seven steps.
        (linear(Amount::Percent(10)), 1, 7, vec![1; 7]),
        (linear(Amount::Percent(10)), 1, 10, vec![1; 10]),
        (linear(Amount::Percent(10)), 1, 200, vec![20; 10]),
        (linear(Amount::Percent(30)), 1, 10, vec![3, 3, 3, 1]),
        (linear(Amount::Tasks(4)), 1, 10, vec![4, 4, 2]),
        (Strategy::AllAtOnce, 1, 1, vec![1]),
        (Strategy::AllAtOnce, 1, 7, vec![7]),
        (Strategy::AllAtOnce, 1, 200, vec![200]),
    ];
    for (strategy, batch_size, planned, sizes) in cases {
        assert_eq!(
            strategy.sizes(planned, batch_size),
            sizes,
            "{strategy:?}, batchSize {batch_size}, {planned} planned"
        );
    }
}

#[test]
fn the_surge_is_sized_for_the_largest_batch() {
    assert_eq!(Strategy::Batches.largest(10, 3), 3);
    assert_eq!(
        canary(Amount::Tasks(1)).largest(10, 3),
        3,
        "the rest's batches"
    );
    assert_eq!(canary(Amount::Percent(50)).largest(10, 3), 5, "the canary");
    assert_eq!(
        canary(Amount::Tasks(1)).largest(1, 3),
        1,
        "one task planned: the canary is all there is"
    );
    assert_eq!(linear(Amount::Percent(10)).largest(200, 1), 20);
    assert_eq!(Strategy::AllAtOnce.largest(12, 1), 12);
    assert_eq!(Amount::Tasks(5).of(3), 3, "never more than planned");
    assert_eq!(Amount::Percent(1).of(1), 1, "at least one task");
}

#[test]
fn where_a_run_is_reads_as_people_say_it() {
    assert_eq!(canary(Amount::Tasks(1)).where_in(1, 7, 2), "canary 1/1");
    assert_eq!(canary(Amount::Tasks(1)).where_in(3, 7, 2), "batch 2 of 3");
    assert_eq!(
        linear(Amount::Percent(10)).where_in(4, 10, 1),
        "step 4 of 10"
    );
    assert_eq!(Strategy::Batches.where_in(2, 10, 5), "batch 2 of 2");
    assert_eq!(Strategy::AllAtOnce.where_in(1, 10, 1), "all at once");
}

#[test]
fn only_a_canary_bake_and_linear_steps_are_watched() {
    let wait = Duration::from_secs(30);
    assert_eq!(
        canary(Amount::Tasks(1)).pause(1, wait),
        Pause::Bake(Duration::from_secs(300))
    );
    assert_eq!(canary(Amount::Tasks(1)).pause(2, wait), Pause::Wait(wait));
    assert_eq!(
        linear(Amount::Tasks(1)).pause(5, wait),
        Pause::Every(Duration::from_secs(60))
    );
    assert!(!Strategy::AllAtOnce.pause(1, wait).watched());
}

fn read(value: Value) -> Result<Strategy, Vec<String>> {
    let mut problems = Vec::new();
    parse_strategy(&value, "spec.strategy", &mut problems)
        .filter(|_| problems.is_empty())
        .ok_or_else(|| problems.iter().map(ToString::to_string).collect())
}

#[test]
fn each_shape_reads_and_writes_back_as_written() {
    for written in [
        json!("allAtOnce"),
        json!({"canary": {"first": 1, "bake": "5m"}}),
        json!({"canary": {"first": "10%", "bake": "30s"}}),
        json!({"linear": {"step": "10%", "every": "1m"}}),
        json!({"linear": {"step": 3, "every": "2m"}}),
    ] {
        let strategy = read(written.clone()).expect("a strategy");
        assert_eq!(strategy.to_value(), Some(written));
    }
}

#[test]
fn a_bad_strategy_is_refused_naming_the_field() {
    let cases = [
        (
            json!({"linear": {"step": "150%", "every": "1m"}}),
            "spec.strategy.linear.step: 150% is not a percentage from 1% to 100%",
        ),
        (
            json!({"linear": {"step": "ten%", "every": "1m"}}),
            "spec.strategy.linear.step: \"ten%\" is not a number of tasks or a percentage",
        ),
        (
            json!({"canary": {"first": 0, "bake": "5m"}}),
            "spec.strategy.canary.first: 0 is not a number of tasks from 1 to 1000",
        ),
        (
            json!({"canary": {"first": 1}}),
            "spec.strategy.canary.bake: is required",
        ),
        (
            json!({"linear": {"step": 1, "every": "0s"}}),
            "spec.strategy.linear.every: must be longer than 0s",
        ),
        (
            json!({"canary": {"first": 1, "bake": "5m", "baek": "1m"}}),
            "spec.strategy.canary.baek",
        ),
        (
            json!("canary"),
            "spec.strategy: \"canary\" is not a strategy; write one of",
        ),
        (
            json!({"canary": {"first": 1, "bake": "5m"}, "linear": {"step": 1, "every": "1m"}}),
            "spec.strategy: a mapping",
        ),
    ];
    for (value, expected) in cases {
        let problems = read(value.clone()).expect_err("refused").join("; ");
        assert!(problems.contains(expected), "{value}: {problems}");
    }
}
