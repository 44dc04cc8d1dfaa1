//! A run drawn in the terminal from its status's timeline: desired,
//! running, healthy (and serving, behind a load balancer) over time, with
//! a row of marks under the time axis for what the run did — the surge,
//! each batch stopped and serving, a gate's hold, a hook, the restore.
//! What `describe`, `get -w` on one request and the sandbox print.
//!
//! Drawn with ratatui's Chart widget into a buffer (no terminal backend),
//! then written out as text: with colours on a terminal, plain characters
//! otherwise (each count its own symbol, so a file or a ticket still tells
//! them apart). Pure: the status and the time in, text out.

use chrono::{DateTime, Utc};
use ratatui_core::buffer::Buffer;
use ratatui_core::layout::Rect;
use ratatui_core::style::{Color, Style};
use ratatui_core::symbols::Marker;
use ratatui_core::widgets::Widget;
use ratatui_widgets::chart::{Axis, Chart, Dataset, GraphType};

use crate::duration;
use crate::request::status::RecycleStatus;
use crate::request::timeline::{Counts, MarkKind, Timeline};

/// How the chart is written out.
#[derive(Clone, Copy, Debug)]
pub struct Look {
    /// Columns in all (the chart is at least 40 wide).
    pub width: u16,
    /// ANSI colours (a terminal), or plain characters.
    pub color: bool,
}

impl Look {
    /// Plain characters, 80 columns: a file, a pipe, a test.
    pub const PLAIN: Look = Look {
        width: 80,
        color: false,
    };

    /// Colours and the terminal's width when stdout is a terminal; plain otherwise.
    pub fn stdout() -> Look {
        use std::io::IsTerminal;
        if !std::io::stdout().is_terminal() {
            return Self::PLAIN;
        }
        Look {
            width: terminal_width().unwrap_or(80).min(160),
            color: true,
        }
    }
}

/// The columns of the terminal on stdout, as the kernel knows them.
fn terminal_width() -> Option<u16> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct given; stdout's
    // descriptor is valid for the process's life.
    let done = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (done == 0 && size.ws_col > 0).then_some(size.ws_col)
}

/// Rows of the plot, axis included.
const HEIGHT: u16 = 12;

/// One count's line: its name, how it is drawn, and where it is read.
pub(crate) struct Series {
    pub(crate) name: &'static str,
    color: Color,
    /// Its colour on a page.
    pub(crate) css: &'static str,
    /// Its symbol in plain text.
    plain: Marker,
    value: fn(&Counts) -> Option<u32>,
}

const SERIES: [Series; 4] = [
    Series {
        name: "desired",
        color: Color::DarkGray,
        css: "#8a8f98",
        plain: Marker::Dot,
        value: |c| Some(c.desired),
    },
    Series {
        name: "running",
        color: Color::Blue,
        css: "#2f6fdf",
        plain: Marker::Block,
        value: |c| Some(c.running),
    },
    Series {
        name: "healthy",
        color: Color::Green,
        css: "#2e9e4f",
        plain: Marker::Bar,
        value: |c| c.healthy,
    },
    Series {
        name: "serving",
        color: Color::Cyan,
        css: "#0f9fb0",
        plain: Marker::Braille,
        value: |c| c.serving,
    },
];

/// A run's lines, ready to draw on any surface: seconds from its start on
/// x, counts on y, each count a step line held until the end (or now).
pub(crate) struct Lines<'a> {
    pub(crate) timeline: &'a Timeline,
    /// Seconds from the start to the end of the run (or now).
    pub(crate) span: f64,
    /// The y range: one under the lowest count, one over the highest.
    pub(crate) bottom: f64,
    pub(crate) top: f64,
    pub(crate) series: Vec<(&'static Series, Vec<(f64, f64)>)>,
}

impl<'a> Lines<'a> {
    /// `None` before the run's first look.
    pub(crate) fn of(status: &'a RecycleStatus, now: DateTime<Utc>) -> Option<Lines<'a>> {
        let t = &status.timeline;
        let start = t.start?;
        let end = status.finished_at.unwrap_or(now).max(start);
        let span = secs(end - start)
            .max(secs_of(t.samples.last()?.at))
            .max(1.0);
        let series: Vec<_> = SERIES
            .iter()
            .filter(|s| t.samples.iter().any(|x| (s.value)(&x.counts).is_some()))
            .map(|s| (s, steps(t, s.value, span)))
            .collect();
        // From just under the lowest count to just over the highest: a dip
        // of one task in two hundred still shows.
        let values = || {
            series
                .iter()
                .flat_map(|(_, points)| points.iter().map(|p| p.1))
        };
        let top = values().fold(1.0, f64::max).ceil() + 1.0;
        let bottom = (values().fold(top, f64::min).floor() - 1.0).max(0.0);
        Some(Lines {
            timeline: t,
            span,
            bottom,
            top,
            series,
        })
    }

    /// Where a mark or sample falls, in seconds from the start.
    pub(crate) fn x_of(&self, at: u64) -> f64 {
        secs_of(at).min(self.span)
    }
}

/// The symbol of a mark in the row under the axis; a batch's stop and its
/// serving are told by their arrows.
pub(crate) fn mark_symbol(kind: &MarkKind) -> char {
    match kind {
        MarkKind::Surge => 'S',
        MarkKind::Stopped => '▼',
        MarkKind::Serving => '▲',
        MarkKind::GateHeld => 'G',
        MarkKind::GateReleased => 'g',
        MarkKind::HookAsked => 'H',
        MarkKind::HookAnswered => 'h',
        MarkKind::Restoring | MarkKind::Restored => 'R',
        MarkKind::Other(_) => '?',
    }
}

const MARKS_LEGEND: &str = "▼ batch stopped  ▲ batch serving  S surge  G/g gate held/released  H/h hook asked/answered  R restore";

/// The run's chart, its marks and its legend; `None` before its first look.
pub(crate) fn draw(status: &RecycleStatus, now: DateTime<Utc>, look: Look) -> Option<String> {
    let lines = Lines::of(status, now)?;
    let width = look.width.max(40);
    let area = Rect::new(0, 0, width, HEIGHT);
    let mut buf = Buffer::empty(area);
    let datasets = lines
        .series
        .iter()
        .map(|(s, points)| {
            let (marker, style) = if look.color {
                (Marker::Braille, Style::default().fg(s.color))
            } else {
                (s.plain, Style::default())
            };
            Dataset::default()
                .name(s.name)
                .marker(marker)
                .graph_type(GraphType::Line)
                .style(style)
                .data(points)
        })
        .collect();
    let (span, bottom, top) = (lines.span, lines.bottom, lines.top);
    let x_labels = [
        "0s".to_string(),
        duration::format(std::time::Duration::from_secs_f64((span / 2.0).round())),
        duration::format(std::time::Duration::from_secs_f64(span.round())),
    ];
    let y_labels = [
        format!("{bottom}"),
        format!("{}", ((top + bottom) / 2.0).round()),
        format!("{top}"),
    ];
    Chart::new(datasets)
        .legend_position(None)
        .x_axis(Axis::default().bounds([0.0, span]).labels(x_labels))
        .y_axis(Axis::default().bounds([bottom, top]).labels(y_labels))
        .render(area, &mut buf);
    let mut out = text(&buf, look.color);
    out.push_str(&marks_row(&buf, &lines));
    out.push_str(&legend(&lines, look.color));
    Some(out)
}

fn secs(d: chrono::TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

fn secs_of(at: u64) -> f64 {
    at as f64 / 1000.0
}

/// A count as a step line: each sample holds until the next, and the last
/// until the end of the run (or now).
fn steps(t: &Timeline, value: fn(&Counts) -> Option<u32>, end: f64) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = Vec::new();
    for s in &t.samples {
        let Some(v) = value(&s.counts) else {
            continue;
        };
        let x = secs_of(s.at);
        if let Some(&(_, before)) = points.last() {
            points.push((x, before));
        }
        points.push((x, f64::from(v)));
    }
    if let Some(&(_, last)) = points.last() {
        points.push((end, last));
    }
    points
}

/// The buffer as lines of text, with SGR colours where asked.
fn text(buf: &Buffer, color: bool) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        let mut current = Color::Reset;
        for x in area.left()..area.right() {
            let cell = &buf[(x, y)];
            if color && cell.fg != current {
                line.push_str(&sgr(cell.fg));
                current = cell.fg;
            }
            line.push_str(cell.symbol());
        }
        if color && current != Color::Reset {
            line.push_str("\x1b[0m");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn sgr(color: Color) -> String {
    let code = match color {
        Color::DarkGray => "90",
        Color::Blue => "34",
        Color::Green => "32",
        Color::Cyan => "36",
        Color::Yellow => "33",
        Color::Red => "31",
        _ => "0",
    };
    format!("\x1b[{code}m")
}

/// The plot's columns: from just right of the axis corner to the right edge.
fn plot_columns(buf: &Buffer) -> Option<(u16, u16)> {
    let area = buf.area;
    (area.top()..area.bottom()).find_map(|y| {
        (area.left()..area.right())
            .find(|&x| buf[(x, y)].symbol() == "└")
            .map(|x| (x + 1, area.right().saturating_sub(1)))
    })
}

/// A row of symbols under the time axis, one where each mark falls; the
/// batches stopped are numbered on a second row where room allows.
fn marks_row(buf: &Buffer, lines: &Lines) -> String {
    let t = lines.timeline;
    let Some((left, right)) = plot_columns(buf) else {
        return String::new();
    };
    if t.marks.is_empty() {
        return String::new();
    }
    let width = usize::from(right - left + 1);
    let mut row = vec![' '; usize::from(right) + 1];
    let mut numbers = vec![' '; usize::from(right) + 8];
    let column = |at: u64| {
        let x = (lines.x_of(at) / lines.span * (width - 1) as f64).round() as usize;
        usize::from(left) + x.min(width - 1)
    };
    for m in &t.marks {
        let x = column(m.at);
        let symbol = mark_symbol(&m.kind);
        // A stop outranks what else falls on its column: batches are what
        // a person counts.
        if row[x] == ' ' || symbol == '▼' {
            row[x] = symbol;
        }
        if m.kind == MarkKind::Stopped {
            let label: Vec<char> = m.batch.to_string().chars().collect();
            if numbers[x..x + label.len() + 1].iter().all(|c| *c == ' ')
                && (x == 0 || numbers[x - 1] == ' ')
            {
                numbers[x..x + label.len()].copy_from_slice(&label);
            }
        }
    }
    let row: String = row.into_iter().collect();
    let numbers: String = numbers.into_iter().collect();
    let mut out = format!("{}\n", row.trim_end());
    if !numbers.trim().is_empty() {
        out.push_str(&format!("{}\n", numbers.trim_end()));
    }
    out
}

fn legend(lines: &Lines, color: bool) -> String {
    let names: Vec<String> = lines
        .series
        .iter()
        .map(|(s, _)| {
            if color {
                format!("{}━━\x1b[0m {}", sgr(s.color), s.name)
            } else {
                let symbol = match s.plain {
                    Marker::Dot => "•",
                    Marker::Block => "█",
                    Marker::Bar => "▄",
                    _ => "⠿",
                };
                format!("{symbol} {}", s.name)
            }
        })
        .collect();
    format!("{}\n{MARKS_LEGEND}\n", names.join("  "))
}

#[cfg(test)]
mod tests;
