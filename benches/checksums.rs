//! Benchmark: SHA256SUMS over a ~1 GiB release of 30 files, side by side with `sha256sum` and
//! two `openssl dgst -sha256` processes, and `xrelease verify` of the same directory.
//!
//! `cargo bench --bench checksums` (BENCH_RUNS rounds, default 7; BENCH_MIB total size, default
//! 1024). Rounds interleave the contenders so that load from other work hits them alike; the
//! files are written once and read from the page cache by every contender.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use xrelease::manifest::{Artifact, Kind, Manifest, SCHEMA_VERSION, Source};

const FILES: usize = 30;

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 7);
    let total_mib: u64 = env_or("BENCH_MIB", 1024);
    let scratch = tempfile::tempdir().expect("a temp dir");
    let dir = scratch.path().join("release");
    std::fs::create_dir(&dir).unwrap();
    let (names, bytes) = write_files(&dir, total_mib);
    eprintln!(
        "{FILES} files, {:.2} GiB in {}",
        bytes as f64 / (1u64 << 30) as f64,
        dir.display()
    );

    // A manifest as the build stage leaves it, so the stage runs exactly as in a release.
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let artifacts: Vec<Artifact> = xrelease::digest::sha256_files(&paths, &|_| false)
        .into_iter()
        .zip(&names)
        .map(|(h, name)| {
            let h = h.unwrap();
            Artifact {
                name: name.clone(),
                kind: Kind::Binary,
                bin: None,
                package: None,
                target: None,
                platform: None,
                describes: None,
                sha256: h.sha256,
                size: h.size,
            }
        })
        .collect();
    let base = Manifest {
        glibc: Default::default(),
        schema_version: SCHEMA_VERSION,
        tag: "v1.0.0".into(),
        version: "1.0.0".into(),
        prerelease: false,
        source: Source {
            repository: None,
            commit: "0".repeat(40),
            commit_time: 0,
        },
        toolchains: Default::default(),
        artifacts,
        builds: vec![],
        timings: Default::default(),
        images: vec![],
    };
    let key = xrelease::signing::key::PrivateKey::generate().unwrap();

    let mut ours = Vec::new();
    let mut verify = Vec::new();
    let mut coreutils = Vec::new();
    let mut openssl = Vec::new();
    for round in 0..runs {
        let mut manifest = base.clone();
        ours.push(time(|| {
            xrelease::stage::checksums::run(&dir, &mut manifest).expect("checksums")
        }));
        if round == 0 {
            let sums = std::fs::read(dir.join("SHA256SUMS")).unwrap();
            std::fs::write(dir.join("SHA256SUMS.sig"), key.sign_base64(&sums)).unwrap();
            let bundle = xrelease::signing::keybundle::sign_blob(&sums, &key);
            std::fs::write(
                dir.join("SHA256SUMS.sigstore.json"),
                xrelease::signing::keybundle::to_json(&bundle).unwrap(),
            )
            .unwrap();
        }
        let policy = xrelease::verify::Policy::Key(key.public_key());
        verify.push(time(|| {
            let report = xrelease::verify::verify(&dir, &policy, &Default::default());
            // No SBOMs or attestations here: only the checksum and signature checks must pass.
            assert!(
                report
                    .checks
                    .iter()
                    .filter(|c| c.check == "checksum" || c.check == "signature")
                    .all(|c| c.passed)
            );
        }));
        coreutils.push(time(|| {
            run(Command::new("sha256sum").args(&names).current_dir(&dir))
        }));
        openssl.push(time(|| {
            run(Command::new("sh")
                .args([
                    "-c",
                    "ls | grep -v SHA256SUMS | xargs -n1 -P2 openssl dgst -sha256 >/dev/null",
                ])
                .current_dir(&dir))
        }));
    }

    let gib = bytes as f64 / (1u64 << 30) as f64;
    let rows = [
        ("xrelease checksums stage", &ours),
        ("xrelease verify (same dir)", &verify),
        ("sha256sum FILES", &coreutils),
        ("openssl dgst, 2 processes", &openssl),
    ];
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10}",
        "contender", "median ms", "min ms", "max ms", "GiB/s"
    );
    for (name, samples) in rows {
        let m = median(samples);
        println!(
            "{name:<28} {:>10.0} {:>10.0} {:>10.0} {:>10.2}",
            m,
            min(samples),
            max(samples),
            gib / (m / 1000.0)
        );
    }
    let m = median(&ours);
    println!(
        "ratio checksums / openssl x2 : {:.2} (goal <= 0.85)",
        m / median(&openssl)
    );
    println!(
        "ratio checksums / sha256sum  : {:.2} (goal <= 0.25)",
        m / median(&coreutils)
    );
    println!(
        "ratio verify / checksums     : {:.2} (goal <= 1.2)",
        median(&verify) / m
    );
    println!(
        "({runs} interleaved rounds, {} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}

/// 30 files of uneven sizes (like binaries and SBOMs) adding up to `total_mib`.
fn write_files(dir: &Path, total_mib: u64) -> (Vec<String>, u64) {
    let weights: Vec<u64> = (0..FILES as u64).map(|i| 1 + (i * 7) % 11).collect();
    let sum: u64 = weights.iter().sum();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut names = Vec::new();
    let mut total = 0;
    for (i, w) in weights.iter().enumerate() {
        let size = total_mib * (1 << 20) * w / sum;
        let mut data = vec![0u8; size as usize];
        for chunk in data.chunks_mut(8) {
            // xorshift: incompressible, deterministic content.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let b = seed.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let name = format!("app{i:02}-1.0.0-linux-amd64");
        std::fs::write(dir.join(&name), &data).unwrap();
        total += size;
        names.push(name);
    }
    (names, total)
}

fn time(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64() * 1000.0
}

fn run(cmd: &mut Command) {
    let out = cmd
        .stdout(std::process::Stdio::null())
        .status()
        .expect("the command starts");
    assert!(out.success());
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[s.len() / 2]
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
