//! What the user sees while a release runs: progress bars on a terminal, plain lines otherwise
//! (a progress line at least every 30 s, so a CI log shows a long build is alive), and the
//! per-stage timing table at the end.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

    /// A bar of `total` steps on a terminal; elsewhere (unless quiet) a line with the steps
    /// done every 30 s (`XRELEASE_PROGRESS_SECS`) until it finishes.
    pub fn bar(&self, total: u64, prefix: &str) -> Bar {
        let done = Arc::new(AtomicU64::new(0));
        let ticker = (self.bars.is_none() && !self.quiet).then(|| {
            let (stop, stopped) = mpsc::channel::<()>();
            let (done, prefix) = (done.clone(), prefix.to_string());
            let every = progress_interval();
            let started = Instant::now();
            std::thread::spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    eprintln!(
                        "  {prefix}: {}/{total} units, {}",
                        done.load(Ordering::Relaxed),
                        clock(started.elapsed())
                    );
                }
            });
            stop
        });
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
        Bar {
            bar,
            done,
            _ticker: ticker,
        }
    }

    /// The per-stage wall times, in release order, as a table on stderr (not with --quiet).
    pub fn timings(&self, timings: &BTreeMap<String, u64>) {
        if !self.quiet && !timings.is_empty() {
            self.info(timing_table(timings));
        }
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
    done: Arc<AtomicU64>,
    /// Dropping it stops the progress lines.
    _ticker: Option<mpsc::Sender<()>>,
}

impl Bar {
    pub fn step(&self, message: &str) {
        self.done.fetch_add(1, Ordering::Relaxed);
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

fn progress_interval() -> Duration {
    let secs = std::env::var("XRELEASE_PROGRESS_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(30.0);
    Duration::from_secs_f64(secs)
}

/// `1m05s`, `12.3s`: wall times in progress lines and the timing table.
pub fn clock(elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", (secs / 60.0) as u64, (secs as u64) % 60)
    }
}

/// The order stages run in: the table lists them so, builds per target first.
const STAGE_ORDER: &[&str] = &[
    "build",
    "assemble",
    "sbom",
    "installer",
    "checksums",
    "image",
    "sign",
    "attest",
    "in-toto",
    "verify",
    "push",
    "publish",
];

/// `stage  wall` rows in release order, then the total of the stages.
pub fn timing_table(timings: &BTreeMap<String, u64>) -> String {
    let rank = |name: &str| {
        let stage = name.split(' ').next().unwrap_or(name);
        let at = STAGE_ORDER
            .iter()
            .position(|s| *s == stage)
            .unwrap_or(STAGE_ORDER.len());
        // "build <target>" rows before the "build" total.
        (at, !name.contains(' '), name.to_string())
    };
    let mut rows: Vec<(&String, &u64)> = timings.iter().collect();
    rows.sort_by_key(|(name, _)| rank(name));
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(5).max(5);
    let mut out = format!("{:<width$}  {:>9}\n", "stage", "wall");
    let mut total = 0;
    for (name, ms) in rows {
        // The "build" total repeats its per-target rows.
        if !(name == "build" && timings.keys().any(|k| k.starts_with("build "))) {
            total += ms;
        }
        out.push_str(&format!(
            "{name:<width$}  {:>9}\n",
            clock(Duration::from_millis(*ms))
        ));
    }
    out.push_str(&format!(
        "{:<width$}  {:>9}",
        "total",
        clock(Duration::from_millis(total))
    ));
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timing_table_lists_stages_in_release_order() {
        let timings = BTreeMap::from([
            ("verify".to_string(), 1_500),
            ("build".to_string(), 70_000),
            ("build x86_64-unknown-linux-gnu".to_string(), 30_000),
            ("build aarch64-unknown-linux-gnu".to_string(), 40_000),
            ("sbom".to_string(), 200),
            ("publish".to_string(), 100),
        ]);
        let table = timing_table(&timings);
        let names: Vec<&str> = table
            .lines()
            .map(|l| l.split("  ").next().unwrap().trim())
            .collect();
        assert_eq!(
            names,
            [
                "stage",
                "build aarch64-unknown-linux-gnu",
                "build x86_64-unknown-linux-gnu",
                "build",
                "sbom",
                "verify",
                "publish",
                "total"
            ]
        );
        assert!(table.ends_with("1m11s"), "{table}");
        assert_eq!(clock(Duration::from_millis(1_234)), "1.2s");
    }
}
