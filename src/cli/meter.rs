//! Progress of a long step: an indicatif bar on a terminal; when stderr is piped or redirected
//! (a log file, CI, `2>&1 | tee`), where indicatif draws nothing, plain lines instead, about
//! every 10 % and at least every 5 s, so a log shows the run is alive and how far it got.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

/// How often a piped meter writes at least one line while work goes on.
const EVERY: Duration = Duration::from_secs(5);

pub enum Meter {
    Bar(ProgressBar),
    Lines {
        what: String,
        unit: String,
        total: usize,
        /// The tenth of `total` last reported, and when.
        tenth: usize,
        last: Instant,
        start: Instant,
    },
    /// Piped, for a step that reports itself otherwise (one line per epoch).
    Silent,
}

impl Meter {
    /// A bar, or plain "what: done/total unit, N s" lines when stderr is not a terminal.
    pub fn new(total: usize, what: &str, unit: &str) -> Meter {
        if std::io::stderr().is_terminal() {
            Meter::Bar(bar(total, what))
        } else {
            let now = Instant::now();
            Meter::Lines {
                what: what.into(),
                unit: unit.into(),
                total,
                tenth: 0,
                last: now,
                start: now,
            }
        }
    }

    /// A bar on a terminal, nothing when piped.
    pub fn bar_only(total: usize, what: &str) -> Meter {
        if std::io::stderr().is_terminal() {
            Meter::Bar(bar(total, what))
        } else {
            Meter::Silent
        }
    }

    pub fn set(&mut self, done: usize) {
        match self {
            Meter::Bar(b) => b.set_position(done as u64),
            Meter::Lines {
                what,
                unit,
                total,
                tenth,
                last,
                start,
            } => {
                // The end is said by the step's own summary line.
                if done == 0 || done >= *total {
                    return;
                }
                let now_tenth = done * 10 / *total;
                if now_tenth > *tenth || last.elapsed() >= EVERY {
                    eprintln!(
                        "{what}: {done}/{total} {unit}, {:.1} s",
                        start.elapsed().as_secs_f64()
                    );
                    *tenth = now_tenth;
                    *last = Instant::now();
                }
            }
            Meter::Silent => {}
        }
    }

    /// Runs `f` (which prints) without a bar drawn through its output.
    pub fn suspend(&self, f: impl FnOnce()) {
        match self {
            Meter::Bar(b) => b.suspend(f),
            _ => f(),
        }
    }

    pub fn finish(self) {
        if let Meter::Bar(b) = self {
            b.finish_and_clear();
        }
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn bar(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
        ))
        .expect("valid template"),
    );
    bar
}
