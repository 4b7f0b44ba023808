//! What the user sees while a release runs: progress bars on a terminal, plain lines otherwise.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Ui {
    quiet: bool,
    bars: Option<MultiProgress>,
}

impl Ui {
    /// Bars only when stderr is a terminal and the user did not ask for `--quiet`.
    pub fn new(quiet: bool) -> Ui {
        let bars = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Ui { quiet, bars }
    }

    /// A status line on stderr (stdout is kept for reports and `--json`).
    pub fn info(&self, message: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        match &self.bars {
            Some(bars) => bars.println(message.as_ref()).unwrap_or(()),
            None => eprintln!("{}", message.as_ref()),
        }
    }

    /// A bar of `total` steps; hidden (and its messages logged as lines) when not on a terminal.
    pub fn bar(&self, total: u64, prefix: &str) -> Bar {
        let bar = match &self.bars {
            Some(bars) => {
                let bar = bars.add(ProgressBar::new(total));
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} {wide_msg}")
                        .expect("a valid template")
                        .progress_chars("=> "),
                );
                bar.set_prefix(prefix.to_string());
                Some(bar)
            }
            None => None,
        };
        Bar { bar }
    }

    /// A bar counting `total` bytes (uploads); hidden when not on a terminal, where the caller
    /// logs plain lines instead.
    pub fn byte_bar(&self, total: u64, prefix: &str) -> ByteBar {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(prefix.to_string());
            bar
        });
        ByteBar { bar }
    }
}

pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    pub fn step(&self, message: &str) {
        if let Some(bar) = &self.bar {
            if bar.position() + 1 > bar.length().unwrap_or(0) {
                bar.set_length(bar.position() + 1);
            }
            bar.inc(1);
            bar.set_message(message.to_string());
        }
    }

    pub fn finish(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_length(bar.position());
            bar.finish_with_message(message.to_string());
        }
    }
}

pub struct ByteBar {
    bar: Option<ProgressBar>,
}

impl ByteBar {
    pub fn set(&self, bytes: u64, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
            bar.set_message(message.to_string());
        }
    }

    pub fn finish(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(message.to_string());
        }
    }
}

/// `1.2 MiB`: sizes in the summary table.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
