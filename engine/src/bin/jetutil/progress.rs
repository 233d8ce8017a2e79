//! The progress of a long operation (`backup`, `restore`) as the user sees it.

use std::io::{self, IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jetdb::{EventLog, Status};

/// The progress of a backup or a restore: a bar on stderr while stderr is a terminal, and
/// every event printed on stdout (the bar steps aside for each).
pub(crate) struct Progress {
    bar: ProgressBar,
    /// Whether the bar may be drawn: in a file or a pipe a bar is only noise.
    terminal: bool,
}

impl Progress {
    /// A bar not drawn yet: it appears at the first status, if stderr is a terminal.
    pub(crate) fn new() -> Progress {
        let style = ProgressStyle::with_template(
            "[{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        // Hidden until the operation reports its total, so no empty bar is drawn before.
        let bar = ProgressBar::hidden().with_style(style);
        Progress {
            bar,
            terminal: io::stderr().is_terminal(),
        }
    }

    /// An event log printing each event's Display on its own line of stdout.
    pub(crate) fn event_log(&self) -> EventLog {
        self.event_log_to(false)
    }

    /// An event log printing each event's Display on its own line of stdout, or of stderr
    /// (when stdout carries a backup stream).
    pub(crate) fn event_log_to(&self, stderr: bool) -> EventLog {
        let bar = self.bar.clone();
        EventLog::new(move |record| {
            bar.suspend(|| {
                // The sink cannot fail the operation; a closed stdout shows when the summary
                // is written.
                let _ = if stderr {
                    writeln!(io::stderr(), "{}", record.event)
                } else {
                    writeln!(io::stdout(), "{}", record.event)
                };
            });
        })
    }

    /// The status callback: moves the bar (the total may grow as the operation learns more).
    pub(crate) fn update(&self, status: &Status) -> jetdb::Result<()> {
        if self.terminal && self.bar.is_hidden() {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        self.bar.set_length(status.total);
        self.bar.set_position(status.done);
        Ok(())
    }

    /// Removes the bar, before the summary is printed.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
