//! The SBOM stage alone, on a real workspace, side by side with `cargo cyclonedx` and with a bare
//! `cargo metadata` as the floor.
//!
//! Set up once with `bash bench/sbom/setup.sh`, then `cargo bench --bench sbom`
//! (`BENCH_RUNS=N` rounds, 15 by default). The contenders run interleaved, one of each per round
//! in a rotating order, so a load spike on a shared machine hits all of them alike; the figures
//! are medians. The same run checks what the documents list against `cargo tree`.
//!
//! `BENCH_QUICK=1` (CI, after `BENCH_QUICK=1 bash bench/sbom/setup.sh`) runs on the small
//! workload, and without cargo-cyclonedx when it is not installed: it checks that the bench
//! works, not how fast.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use xrelease::manifest::{Kind, Manifest};
use xrelease::stage::sbom;
use xrelease::workspace::Workspace;

const TARGET: &str = "x86_64-unknown-linux-gnu";
const PACKAGE: &str = "sbom-bench-app";
const GOAL_VS_METADATA: f64 = 1.5;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: there, building is the test.
    if !std::env::args().any(|a| a == "--bench") {
        println!("bench sbom: not run (use `cargo bench --bench sbom`)");
        return ExitCode::SUCCESS;
    }
    match bench() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(why) => {
            eprintln!("bench sbom: {why}");
            ExitCode::FAILURE
        }
    }
}

/// One timed contender's samples: wall time, and CPU time (this process and its children) where
/// /proc tells it.
struct Series {
    name: &'static str,
    samples: Vec<Duration>,
    cpu: Vec<Duration>,
}

impl Series {
    fn new(name: &'static str) -> Series {
        Series {
            name,
            samples: Vec::new(),
            cpu: Vec::new(),
        }
    }

    /// Mean CPU milliseconds per run: /proc counts in ticks of 10 ms, so a mean, not a median.
    fn cpu_mean(&self) -> Option<f64> {
        (!self.cpu.is_empty()).then(|| {
            self.cpu.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e3 / self.cpu.len() as f64
        })
    }

    fn sorted_ms(&self) -> Vec<f64> {
        let mut ms: Vec<f64> = self.samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        ms
    }

    fn median(&self) -> f64 {
        let ms = self.sorted_ms();
        let n = ms.len();
        if n % 2 == 1 {
            ms[n / 2]
        } else {
            (ms[n / 2 - 1] + ms[n / 2]) / 2.0
        }
    }

    fn row(&self) -> String {
        let ms = self.sorted_ms();
        format!(
            "{:<44} {:>9.1} {:>9.1} {:>9.1} {:>9}",
            self.name,
            self.median(),
            ms[0],
            ms[ms.len() - 1],
            self.cpu_mean()
                .map(|c| format!("{c:.1}"))
                .unwrap_or_default()
        )
    }
}

fn bench() -> Result<bool, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| !v.is_empty());
    let ws_dir = repo.join(if quick {
        "target/bench-sbom/quick"
    } else {
        "target/bench-sbom/ws"
    });
    // cargo-cyclonedx is only optional for the quick check.
    let with_cdx = !quick || run_cyclonedx_version();
    let dist = ws_dir.join("dist/v0.1.0");
    let scratch = repo.join("target/bench-sbom/scratch");
    if !Manifest::path(&dist).is_file() {
        return Err(format!(
            "no release of the workload in {}: run `{}bash bench/sbom/setup.sh` first",
            dist.display(),
            if quick { "BENCH_QUICK=1 " } else { "" }
        ));
    }
    let runs: usize = match std::env::var("BENCH_RUNS") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(format!("BENCH_RUNS={v} is not a positive number"))?,
        Err(_) => 15,
    };
    let manifest = Manifest::read(&dist).map_err(|e| e.to_string())?;
    let binary = manifest
        .binaries()
        .find(|b| b.package.as_deref() == Some(PACKAGE))
        .ok_or("the workload's manifest records no binary")?
        .name
        .clone();
    let ours_dir = scratch.join("xrelease");
    let cdx_dir = scratch.join("cargo-cyclonedx");
    for dir in [&ours_dir, &cdx_dir] {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // What an interrupted run of cargo-cyclonedx left next to Cargo.toml.
    for entry in std::fs::read_dir(&ws_dir)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        if entry.file_name().to_string_lossy().ends_with(".cdx.json") {
            let _ = std::fs::remove_file(entry.path());
        }
    }

    let mut metadata = Series::new("(a) cargo metadata (floor)");
    let mut ours = Series::new("(b) xrelease SBOM stage (load + sbom::run)");
    let mut ours_load = Series::new("      of which Workspace::load (cargo metadata)");
    let mut ours_run = Series::new("      of which sbom::run");
    let mut cdx = Series::new("(c) cargo cyclonedx");

    let mut first_ours = None;
    let contenders = if with_cdx { 3 } else { 2 };
    println!(
        "SBOM stage benchmark: {} ({}), {runs} interleaved rounds + 1 warm-up, cargo = {}",
        ws_dir.display(),
        binary,
        cargo().to_string_lossy()
    );
    for round in 0..=runs {
        let warm_up = round == 0;
        for slot in 0..contenders {
            let (series, wall, cpu) = match (slot + round) % contenders {
                0 => {
                    let (wall, cpu) = time_metadata(&ws_dir)?;
                    (&mut metadata, wall, cpu)
                }
                1 => {
                    let (load, run, cpu) = time_ours(&ws_dir, &ours_dir, &manifest)?;
                    if warm_up {
                        first_ours = Some((load, run));
                    }
                    ours_load.samples.push(load);
                    ours_run.samples.push(run);
                    (&mut ours, load + run, cpu)
                }
                _ => {
                    let (wall, cpu) = time_cyclonedx(&ws_dir)?;
                    (&mut cdx, wall, cpu)
                }
            };
            series.samples.push(wall);
            series.cpu.extend(cpu);
        }
        if warm_up {
            for s in [
                &mut metadata,
                &mut ours,
                &mut ours_load,
                &mut ours_run,
                &mut cdx,
            ] {
                s.samples.clear();
                s.cpu.clear();
            }
        }
    }
    let cdx_file = if with_cdx {
        Some(collect_cyclonedx_output(&ws_dir, &cdx_dir)?)
    } else {
        println!("cargo-cyclonedx is not installed: left out of this quick run");
        None
    };

    println!();
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>9}",
        "contender (ms)", "median", "min", "max", "cpu mean"
    );
    for s in [&metadata, &ours, &ours_load, &ours_run, &cdx] {
        if !s.samples.is_empty() {
            println!("{}", s.row());
        }
    }
    let vs_metadata = ours.median() / metadata.median();
    println!();
    println!(
        "ratio of medians: ours / cargo metadata = {vs_metadata:.2}x (goal <= {GOAL_VS_METADATA}x: {})",
        if vs_metadata <= GOAL_VS_METADATA {
            "met"
        } else {
            "NOT met"
        }
    );
    if with_cdx {
        let vs_cdx = ours.median() / cdx.median();
        println!(
            "ratio of medians: ours / cargo cyclonedx = {vs_cdx:.2}x (goal < 1: {})",
            if vs_cdx < 1.0 { "met" } else { "NOT met" }
        );
        println!(
            "paired (median of the per-round ratios): ours / cargo metadata = {:.2}x, ours / cargo cyclonedx = {:.2}x",
            paired(&ours, &metadata),
            paired(&ours, &cdx)
        );
    }
    if let (Some(a), Some(b), Some(c)) = (metadata.cpu_mean(), ours.cpu_mean(), cdx.cpu_mean()) {
        println!(
            "CPU time (mean, load-independent): ours / cargo metadata = {:.2}x, ours / cargo cyclonedx = {:.2}x",
            b / a,
            b / c
        );
    }
    if let Some((load, run)) = first_ours {
        println!(
            "first (warm-up) run of the stage in this process: {:.1} ms (load {:.1} + sbom::run {:.1})",
            (load + run).as_secs_f64() * 1e3,
            load.as_secs_f64() * 1e3,
            run.as_secs_f64() * 1e3
        );
    }
    let share = ours_load.median() / ours.median() * 100.0;
    println!(
        "the stage's own cargo metadata is {share:.0}% of its time; sbom::run is {:.1} ms",
        ours_run.median()
    );

    // ---- what the documents list -----------------------------------------------------------
    println!();
    let oracle = cargo_tree(&ws_dir)?;
    let ours_doc = ours_dir.join(xrelease::layout::sbom(&binary));
    let our_set = components(&ours_doc)?;
    let mut ok = true;

    println!(
        "oracle `cargo tree -p {PACKAGE} --target {TARGET} -e normal,no-proc-macro`: {} crates",
        oracle.len()
    );
    let extra: Vec<&String> = our_set.difference(&oracle).collect();
    let missing: Vec<&String> = oracle.difference(&our_set).collect();
    if extra.is_empty() && missing.is_empty() {
        println!(
            "xrelease:        {} components, equal to the oracle (listing no crate the oracle doesn't: checked)",
            our_set.len()
        );
    } else {
        ok = false;
        println!(
            "xrelease:        {} components, NOT equal to the oracle: {} extra {:?}, {} missing {:?}",
            our_set.len(),
            extra.len(),
            first(&extra, 10),
            missing.len(),
            first(&missing, 10)
        );
    }
    let released = dist.join(xrelease::layout::sbom(&binary));
    if std::fs::read(&released).ok() == std::fs::read(&ours_doc).ok() {
        println!(
            "                 byte-identical to the release's {}",
            released.display()
        );
    } else {
        ok = false;
        println!(
            "                 DIFFERS from the release's {}",
            released.display()
        );
    }
    let Some(cdx_file) = cdx_file else {
        return Ok(ok);
    };
    let cdx_set = components(&cdx_file)?;
    // What the build compiled, to say where cargo-cyclonedx's extra crates come from.
    let workspace = Workspace::load(&ws_dir).map_err(|e| e.to_string())?;
    let build = Build::new(&workspace, &manifest);
    report_cyclonedx("--no-build-deps (timed)", &cdx_set, &oracle, &build);
    // Once more with its default (build dependencies included), untimed, for the record.
    let default_args: Vec<&str> = CYCLONEDX_ARGS
        .iter()
        .copied()
        .filter(|a| *a != "--no-build-deps")
        .collect();
    run_cyclonedx(&ws_dir, &default_args)?;
    let default_file = collect_cyclonedx_output(&ws_dir, &cdx_dir.join("default"))?;
    report_cyclonedx(
        "default flags (untimed)",
        &components(&default_file)?,
        &oracle,
        &build,
    );
    Ok(ok)
}

/// `name vVERSION` of the crates a build compiled for the target and only for the host.
struct Build {
    target_side: BTreeSet<String>,
    host_only: BTreeSet<String>,
}

impl Build {
    fn new(workspace: &Workspace, manifest: &Manifest) -> Build {
        let name = |id: &str| {
            workspace
                .metadata
                .packages
                .iter()
                .find(|p| p.id.repr == id)
                .map(|p| format!("{} v{}", p.name, p.version))
        };
        let units = manifest.builds.iter().flat_map(|b| &b.units);
        let target_side: BTreeSet<String> = units
            .clone()
            .filter(|u| !u.host)
            .filter_map(|u| name(&u.package_id))
            .collect();
        let host_only = units
            .filter(|u| u.host)
            .filter_map(|u| name(&u.package_id))
            .filter(|n| !target_side.contains(n))
            .collect();
        Build {
            target_side,
            host_only,
        }
    }
}

fn report_cyclonedx(
    flags: &str,
    listed: &BTreeSet<String>,
    oracle: &BTreeSet<String>,
    build: &Build,
) {
    let extra: Vec<&String> = listed.difference(oracle).collect();
    let missing: Vec<&String> = oracle.difference(listed).collect();
    let (host, rest): (Vec<&String>, Vec<&String>) = extra
        .iter()
        .copied()
        .partition(|c| build.host_only.contains(*c));
    let (compiled, never): (Vec<&String>, Vec<&String>) = rest
        .iter()
        .copied()
        .partition(|c| build.target_side.contains(*c));
    println!(
        "cargo-cyclonedx, {flags}: {} components, {} not in the oracle, {} of the oracle's missing{}",
        listed.len(),
        extra.len(),
        missing.len(),
        if missing.is_empty() {
            String::new()
        } else {
            format!(" ({})", first(&missing, 8).join(", "))
        }
    );
    for (what, items) in [
        ("host-only (proc-macros, build deps)", &host),
        ("not compiled by the build at all", &never),
        (
            "compiled for the target but not linked into the bin",
            &compiled,
        ),
    ] {
        if !items.is_empty() {
            println!(
                "    {:>3} {what}: {}",
                items.len(),
                first(items, 6).join(", ")
            );
        }
    }
}

/// CPU time used so far by this process and its waited-for descendants (Linux /proc; `None`
/// elsewhere). /proc counts in clock ticks, which are 1/100 s on Linux (USER_HZ).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces): the 12th to
    // 15th are utime, stime, cutime and cstime.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some(Duration::from_millis(ticks * 10))
}

fn cpu_since(before: Option<Duration>) -> Option<Duration> {
    Some(cpu_time()?.saturating_sub(before?))
}

/// The median of `a[i] / b[i]` over the rounds: each ratio compares runs made moments apart.
fn paired(a: &Series, b: &Series) -> f64 {
    let mut ratios: Vec<f64> = a
        .samples
        .iter()
        .zip(&b.samples)
        .map(|(x, y)| x.as_secs_f64() / y.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    if n % 2 == 1 {
        ratios[n / 2]
    } else {
        (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
    }
}

/// The cargo running this bench (`CARGO`), for every contender alike: the `cargo_metadata` crate
/// behind `Workspace::load` prefers it too, and it skips rustup's proxy, which would otherwise
/// add its start-up to the commands only.
fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn first<'a>(items: &[&'a String], n: usize) -> Vec<&'a str> {
    let mut out: Vec<&str> = items.iter().take(n).map(|s| s.as_str()).collect();
    if items.len() > n {
        out.push("...");
    }
    out
}

/// (a) The floor: what any SBOM of a cargo workspace needs at least, the resolve itself.
fn time_metadata(ws: &Path) -> Result<(Duration, Option<Duration>), String> {
    let cpu = cpu_time();
    let start = Instant::now();
    let status = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(ws)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    let elapsed = start.elapsed();
    let cpu = cpu_since(cpu);
    if !status.success() {
        return Err(format!("cargo metadata failed: {status}"));
    }
    Ok((elapsed, cpu))
}

/// (b) The stage as the pipeline runs it: the workspace's metadata (the stage needs it), then the
/// documents for every binary of the manifest, into an empty directory. In-process, so only the warm-up round pays the
/// one-time costs of a fresh process (lazily compiled regexes, ...): it is reported apart.
fn time_ours(
    ws: &Path,
    out: &Path,
    manifest: &Manifest,
) -> Result<(Duration, Duration, Option<Duration>), String> {
    let mut manifest = manifest.clone();
    // The build stage empties dist/<tag>/ first, so in a release the SBOMs are new files.
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let cpu = cpu_time();
    let start = Instant::now();
    let workspace = Workspace::load(ws).map_err(|e| e.to_string())?;
    let loaded = Instant::now();
    sbom::run(out, &workspace.metadata, &mut manifest).map_err(|e| e.to_string())?;
    let done = Instant::now();
    let cpu = cpu_since(cpu);
    if manifest.artifacts.iter().all(|a| a.kind != Kind::Sbom) {
        return Err("the SBOM stage recorded no SBOM".into());
    }
    // The workspace is freed after the clocks stop, as a release frees it at exit.
    Ok((loaded - start, done - loaded, cpu))
}

/// Whether `cargo cyclonedx` can run here.
fn run_cyclonedx_version() -> bool {
    Command::new(cargo())
        .args(["cyclonedx", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// (c) cargo-cyclonedx, asked for the closest thing to ours: one CycloneDX 1.5 JSON document per
/// binary, for the same target.
fn time_cyclonedx(ws: &Path) -> Result<(Duration, Option<Duration>), String> {
    let cpu = cpu_time();
    let wall = run_cyclonedx(ws, CYCLONEDX_ARGS)?;
    Ok((wall, cpu_since(cpu)))
}

fn run_cyclonedx(ws: &Path, args: &[&str]) -> Result<Duration, String> {
    let start = Instant::now();
    let out = Command::new(cargo())
        .args(args)
        .current_dir(ws)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cargo cyclonedx: {e} (run `bash bench/sbom/setup.sh`)"))?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "cargo cyclonedx failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(elapsed)
}

const CYCLONEDX_ARGS: &[&str] = &[
    "cyclonedx",
    "--format",
    "json",
    "--spec-version",
    "1.5",
    "--describe",
    "binaries",
    "--target",
    TARGET,
    "--no-build-deps",
    "--quiet",
];

/// cargo-cyclonedx writes next to Cargo.toml (it has no output directory): move its document for
/// the bin into the scratch directory, untimed.
fn collect_cyclonedx_output(ws: &Path, into: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(ws).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.to_string_lossy().ends_with(".cdx.json") {
            let dest = into.join(path.file_name().expect("a file"));
            std::fs::rename(&path, &dest).map_err(|e| format!("{}: {e}", path.display()))?;
            found.push(dest);
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!(
            "expected one document from cargo cyclonedx in {}, found {found:?}",
            ws.display()
        )),
    }
}

/// The oracle: what cargo says the package links for the target, the package itself aside.
fn cargo_tree(ws: &Path) -> Result<BTreeSet<String>, String> {
    let out = Command::new(cargo())
        .args([
            "tree",
            "--locked",
            "-p",
            PACKAGE,
            "--target",
            TARGET,
            "-e",
            "normal,no-proc-macro",
            "--prefix",
            "none",
        ])
        .current_dir(ws)
        .output()
        .map_err(|e| format!("cargo tree: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let root = lines.next().unwrap_or_default();
    if !root.starts_with(&format!("{PACKAGE} v")) {
        return Err(format!("unexpected cargo tree root: {root}"));
    }
    Ok(lines
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect())
}

/// `name vVERSION` of every component a CycloneDX JSON document lists, nested ones included.
fn components(path: &Path) -> Result<BTreeSet<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BTreeSet::new();
    let mut todo: Vec<&serde_json::Value> = vec![&doc["components"]];
    while let Some(list) = todo.pop() {
        for c in list.as_array().into_iter().flatten() {
            if let (Some(name), Some(version)) = (c["name"].as_str(), c["version"].as_str()) {
                out.insert(format!("{name} v{version}"));
            }
            todo.push(&c["components"]);
        }
    }
    Ok(out)
}
