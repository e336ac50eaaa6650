//! An import's progress on standard error: a bar (`indicatif`) on a
//! terminal, otherwise a plain line every few seconds; messages about
//! lines go above the bar.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::Summary;

/// How often a plain progress line is printed.
const EVERY: Duration = Duration::from_secs(2);

/// The bar, or the clock of the plain lines.
pub struct Progress {
    bar: Option<ProgressBar>,
    last: Instant,
    bytes: u64,
}

impl Progress {
    /// A bar over `size` bytes (a spinner when unknown) when standard error
    /// is a terminal, plain lines otherwise.
    pub fn new(size: Option<u64>) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let (bar, template) = match size {
                Some(size) => {
                    (ProgressBar::new(size), "{bar:40} {bytes}/{total_bytes} ({eta}) {msg}")
                }
                None => (ProgressBar::new_spinner(), "{spinner} {bytes} {msg}"),
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar
        });
        Progress { bar, last: Instant::now(), bytes: 0 }
    }

    /// Prints a message (a bad line, a refusal) on its own line.
    pub fn println(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }

    /// `bytes` of the input read so far.
    pub fn update(&mut self, bytes: u64, summary: &Summary) {
        self.bytes = bytes;
        match &self.bar {
            Some(bar) => bar.set_position(bytes),
            None if self.last.elapsed() >= EVERY => {
                self.last = Instant::now();
                eprintln!("{}", line(bytes, summary));
            }
            None => {}
        }
    }

    /// The counts changed (a batch was answered).
    pub fn update_counts(&mut self, summary: &Summary) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("imported {}, bad {}", summary.imported, summary.bad));
        }
    }

    /// Ends the bar (or prints a last plain line).
    pub fn finish(&self, summary: &Summary) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!("{}", line(self.bytes, summary)),
        }
    }
}

fn line(bytes: u64, summary: &Summary) -> String {
    format!(
        "progress: {} lines ({bytes} bytes) read, {} imported, {} bad, {} refused",
        summary.lines, summary.imported, summary.bad, summary.refused
    )
}
