//! A run's timeline as an inline SVG: the same lines the terminal chart
//! draws ([`crate::cli::chart::Lines`]), with a dashed rule and a symbol
//! for each mark, each with a tooltip saying what happened when. The
//! numbers a test reads are on the elements as data attributes. Pure.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use crate::cli::chart::{Lines, mark_symbol};
use crate::duration;
use crate::request::status::RecycleStatus;
use crate::request::timeline::{Mark, MarkKind};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 280.0;
/// Room for the axes' labels and the marks' row.
const LEFT: f64 = 44.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 52.0;

/// The chart, or a sentence when the run has no timeline yet.
pub(super) fn timeline(status: &RecycleStatus, now: DateTime<Utc>) -> Markup {
    let Some(lines) = Lines::of(status, now) else {
        let why = if status.started_at.is_some() {
            "No timeline: this run was written by an earlier release."
        } else {
            "No timeline yet: the run has not started."
        };
        return html! { p.empty { (why) } };
    };
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |secs: f64| LEFT + secs / lines.span * plot_w;
    let y = |count: f64| TOP + (lines.top - count) / (lines.top - lines.bottom) * plot_h;
    let t = lines.timeline;
    let last = t.samples.last().map(|s| s.counts);
    let lowest = |f: fn(&crate::request::timeline::Counts) -> Option<u32>| {
        t.samples.iter().filter_map(|s| f(&s.counts)).min()
    };
    let ticks = y_ticks(lines.bottom, lines.top);
    html! {
        svg #timeline xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {HEIGHT}"))
            role="img" aria-label="The run's counts over time"
            data-samples=(t.samples.len()) data-marks=(t.marks.len())
            data-span-seconds=(format!("{:.0}", lines.span))
            data-last-desired=[last.map(|c| c.desired)]
            data-last-running=[last.map(|c| c.running)]
            data-lowest-running=[lowest(|c| Some(c.running))]
            data-lowest-healthy=[lowest(|c| c.healthy)]
            data-highest-desired=[t.samples.iter().map(|s| s.counts.desired).max()] {
            @for tick in &ticks {
                line.grid x1=(LEFT) x2=(WIDTH - RIGHT) y1=(px(y(*tick))) y2=(px(y(*tick))) {}
                text.ylabel x=(LEFT - 6.0) y=(px(y(*tick) + 4.0)) text-anchor="end" { (tick) }
            }
            line.axis x1=(LEFT) x2=(WIDTH - RIGHT) y1=(TOP + plot_h) y2=(TOP + plot_h) {}
            @for (secs, anchor) in [(0.0, "start"), (lines.span / 2.0, "middle"), (lines.span, "end")] {
                text.xlabel x=(px(x(secs))) y=(HEIGHT - 6.0) text-anchor=(anchor) { (seconds(secs)) }
            }
            @for m in &t.marks {
                (mark(m, x(lines.x_of(m.at)), TOP, TOP + plot_h, t.time_of(m.at)))
            }
            @for (series, points) in &lines.series {
                path.series data-series=(series.name)
                    data-last=[points.last().map(|p| p.1)]
                    stroke=(series.css) fill="none"
                    // Desired under the others, wide and dashed, so it shows where they meet it.
                    stroke-width=(if series.name == "desired" { "4" } else { "2" })
                    stroke-dasharray=[(series.name == "desired").then_some("7 4")]
                    d=(path(points, &x, &y)) {
                    title { (series.name) }
                }
            }
            @for (i, (series, _)) in lines.series.iter().enumerate() {
                g.legend transform=(format!("translate({}, 14)", LEFT + 110.0 * i as f64)) {
                    line x1="0" x2="18" y1="-4" y2="-4" stroke=(series.css) stroke-width="3" {}
                    text x="24" y="0" { (series.name) }
                }
            }
        }
    }
}

fn px(v: f64) -> String {
    format!("{v:.1}")
}

fn seconds(secs: f64) -> String {
    duration::format(std::time::Duration::from_secs_f64(secs.round()))
}

/// Whole counts between the bottom and the top, at most six of them.
fn y_ticks(bottom: f64, top: f64) -> Vec<f64> {
    let range = (top - bottom).max(1.0);
    let step = (range / 5.0).ceil().max(1.0);
    let mut ticks = Vec::new();
    let mut v = bottom;
    while v <= top {
        ticks.push(v);
        v += step;
    }
    ticks
}

/// A step line through the points: `M x y L x y ...`.
fn path(points: &[(f64, f64)], x: &impl Fn(f64) -> f64, y: &impl Fn(f64) -> f64) -> String {
    points
        .iter()
        .enumerate()
        .map(|(i, (px_, py))| {
            let verb = if i == 0 { 'M' } else { 'L' };
            format!("{verb}{:.1} {:.1}", x(*px_), y(*py))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A dashed rule where the mark happened, its symbol under the plot and a
/// tooltip in words ("batch 3 stopped at 10:02:05 UTC").
fn mark(m: &Mark, x: f64, top: f64, bottom: f64, when: Option<DateTime<Utc>>) -> Markup {
    let what = match (&m.kind, m.batch) {
        (MarkKind::Stopped | MarkKind::Serving, b) if b > 0 => {
            format!("batch {b} {}", m.kind.words())
        }
        (kind, _) => kind.words().to_string(),
    };
    let when = when.map_or(String::new(), |t| {
        format!(" at {}", t.format("%H:%M:%S UTC"))
    });
    html! {
        g.mark data-kind=(m.kind.as_str()) data-batch=(m.batch) {
            title { (what) (when) }
            line x1=(px(x)) x2=(px(x)) y1=(top) y2=(bottom) {}
            text x=(px(x)) y=(bottom + 14.0) text-anchor="middle" { (mark_symbol(&m.kind)) }
            @if m.kind == MarkKind::Stopped && m.batch > 0 {
                text.batch x=(px(x)) y=(bottom + 26.0) text-anchor="middle" { (m.batch) }
            }
        }
    }
}
