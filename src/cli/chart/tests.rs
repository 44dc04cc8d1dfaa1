//! The chart drawn from a timeline: its lines, the marks under the axis
//! where they happened, plain characters off a terminal.

use chrono::{DateTime, Utc};

use super::*;
use crate::request::status::Phase;
use crate::request::timeline::{Mark, Sample};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

/// A three-task run: surge at 0, a batch stopped every 20 s, each serving
/// 10 s later, the restore at 60 s.
fn three_task_run() -> RecycleStatus {
    let c = |desired, running, pending, healthy| Counts {
        desired,
        running,
        pending,
        healthy: Some(healthy),
        serving: None,
    };
    let mut samples = vec![(0, c(3, 3, 0, 3)), (1, c(4, 3, 1, 3)), (5, c(4, 4, 0, 4))];
    let mut marks = vec![(1, MarkKind::Surge, 0)];
    for b in 0..3u32 {
        let s = 10 + 20 * i64::from(b);
        samples.push((s, c(4, 3, 1, 3)));
        samples.push((s + 5, c(4, 4, 0, 3)));
        samples.push((s + 10, c(4, 4, 0, 4)));
        marks.push((s, MarkKind::Stopped, b + 1));
        marks.push((s + 10, MarkKind::Serving, b + 1));
    }
    samples.push((70, c(3, 4, 0, 4)));
    samples.push((75, c(3, 3, 0, 3)));
    marks.push((70, MarkKind::Restored, 0));
    RecycleStatus {
        phase: Phase::Succeeded,
        started_at: Some(at(0)),
        finished_at: Some(at(75)),
        timeline: Timeline {
            start: Some(at(0)),
            samples: samples
                .into_iter()
                .map(|(s, counts)| Sample {
                    at: s as u64 * 1000,
                    counts,
                })
                .collect(),
            marks: marks
                .into_iter()
                .map(|(s, kind, batch)| Mark {
                    at: s as u64 * 1000,
                    kind,
                    batch,
                })
                .collect(),
            thinned: 0,
        },
        ..Default::default()
    }
}

#[test]
fn a_run_is_drawn_with_its_marks_where_they_happened() {
    let status = three_task_run();
    let text = draw(
        &status,
        at(100),
        Look {
            width: 80,
            color: false,
        },
    )
    .unwrap();
    println!("{text}");
    assert!(!text.contains('\x1b'), "plain text: no escape codes");
    let lines: Vec<&str> = text.lines().collect();
    let axis = lines
        .iter()
        .position(|l| l.contains('└'))
        .expect("an x axis");
    let corner = lines[axis].chars().position(|c| c == '└').unwrap();
    assert!(
        lines[axis + 1].starts_with("0s") && lines[axis + 1].ends_with("1m15s"),
        "{text}"
    );
    let row = axis + 2;
    let marks: Vec<char> = lines[row].chars().collect();
    let stops: Vec<usize> = (0..marks.len()).filter(|&i| marks[i] == '▼').collect();
    assert_eq!(stops.len(), 3, "a mark per batch stopped: {}", lines[row]);
    // Stopped at 10, 30 and 50 s of a 75 s run, over the plot's columns.
    let plot = 80 - (corner + 1) - 1;
    for (i, s) in [10.0, 30.0, 50.0].iter().enumerate() {
        let expected = corner + 1 + (s / 75.0 * plot as f64).round() as usize;
        assert_eq!(stops[i], expected, "batch {} at {s}s", i + 1);
    }
    assert_eq!(
        marks[corner + 1 + (1.0 / 75.0 * plot as f64).round() as usize],
        'S'
    );
    let numbers: Vec<char> = lines[row + 1].chars().collect();
    for (i, x) in stops.iter().enumerate() {
        assert_eq!(
            numbers[*x],
            char::from(b'1' + i as u8),
            "batch numbered under its mark"
        );
    }
    assert_eq!(
        marks.iter().filter(|c| **c == '▲').count(),
        3,
        "each batch serving"
    );
    assert!(
        text.contains("• desired  █ running  ▄ healthy\n"),
        "no serving line without a load balancer: {text}"
    );
    // The counts run from 2 to 5: one under the lowest, one over the highest.
    assert!(
        lines[0].starts_with('5') && lines[axis - 1].starts_with('2'),
        "{text}"
    );
}

#[test]
fn a_terminal_gets_colours_and_a_run_with_no_look_no_chart() {
    let status = three_task_run();
    let text = draw(
        &status,
        at(100),
        Look {
            width: 60,
            color: true,
        },
    )
    .unwrap();
    assert!(text.contains("\x1b[34m"), "running in blue");
    assert!(text.contains("\x1b[32m"), "healthy in green");
    assert!(
        draw(
            &RecycleStatus::default(),
            at(0),
            Look {
                width: 80,
                color: true
            }
        )
        .is_none()
    );
}
