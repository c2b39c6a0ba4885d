//! Progress display: an indicatif bar on a terminal, plain lines otherwise (or with
//! `--no-progress`), nothing for worker processes.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A progress bar on stderr.
    Bar,
    /// One plain line per second on stderr.
    Lines,
    /// Nothing.
    Quiet,
}

impl Mode {
    /// A bar when stderr is a terminal and progress was not turned off, else lines.
    pub fn detect(no_progress: bool) -> Mode {
        if !no_progress && std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

/// The progress of one phase at a time.
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    pos: u64,
    last_line: Instant,
}

impl Progress {
    /// A display in `mode`.
    pub fn new(mode: Mode) -> Self {
        Progress {
            mode,
            bar: None,
            label: String::new(),
            total: 0,
            pos: 0,
            last_line: Instant::now(),
        }
    }

    /// Starts a phase counting up to `total` (0: no known end; the bar is a spinner and the
    /// plain lines show the count alone).
    pub fn phase(&mut self, label: &str, total: u64) {
        self.finish();
        self.label = label.to_string();
        self.total = total;
        self.pos = 0;
        self.last_line = Instant::now();
        match self.mode {
            Mode::Bar => {
                let len = (total > 0).then_some(total);
                let b = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
                let template = if total > 0 {
                    "{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, {elapsed})"
                } else {
                    "{msg:>10} {spinner} {pos} ({elapsed})"
                };
                let style = ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                b.set_style(style);
                b.set_message(label.to_string());
                self.bar = Some(b);
            }
            Mode::Lines if total == 0 => eprintln!("{label}: 0"),
            Mode::Lines => eprintln!("{label}: 0/{total}"),
            Mode::Quiet => {}
        }
    }

    /// Sets the position of the current phase.
    pub fn set(&mut self, pos: u64) {
        self.pos = pos;
        match self.mode {
            Mode::Bar => {
                if let Some(b) = &self.bar {
                    b.set_position(pos);
                }
            }
            Mode::Lines => {
                if self.last_line.elapsed() >= Duration::from_secs(1) {
                    self.last_line = Instant::now();
                    if self.total == 0 {
                        eprintln!("{}: {}", self.label, pos);
                    } else {
                        eprintln!("{}: {}/{}", self.label, pos, self.total);
                    }
                }
            }
            Mode::Quiet => {}
        }
    }

    /// Ends the current phase.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.set_position(self.pos);
            b.finish();
        } else if self.mode == Mode::Lines && !self.label.is_empty() {
            if self.total == 0 {
                eprintln!("{}: {} done", self.label, self.pos);
            } else {
                eprintln!("{}: {}/{} done", self.label, self.pos, self.total);
            }
        }
        self.label.clear();
    }

    /// Prints a line that does not disturb the bar.
    pub fn note(&self, line: &str) {
        match (&self.bar, self.mode) {
            (Some(b), _) => b.println(line),
            (None, Mode::Quiet) => {}
            (None, _) => eprintln!("{line}"),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
    }
}
