//! Flags → engine calls → report and exit code. The only place that knows about argv.
//!
//! Both doors, the `xrelease` binary and a workspace's `cargo xtask`, call [`main`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::SignMode;
use crate::context::{self, Context, Inputs, Mode};
use crate::error::{Error, Result, exit};
use crate::signing::Signer;
use crate::signing::key::PublicKey;
use crate::signing::keyless::{KeylessError, TrustSource};
use crate::stage::publish::Publisher;
use crate::tag::Tag;
use crate::ui::{Ui, human_size};
use crate::verify::keyless::BundleSigner;
use crate::verify::{self, Expect, Policy};
use crate::workspace::Workspace;

#[derive(Debug, Parser)]
#[command(
    name = "xrelease",
    version,
    about = "Verifiable releases for Rust workspaces: build, SBOM, sign, attest, verify, publish"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build, describe, sign, verify and publish TAG (`--dry-run` rehearses without publishing)
    Release {
        tag: Tag,
        /// Rehearse: every stage runs for real, but nothing is published
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: sign with the configured signer instead of a throwaway key
        #[arg(long, requires = "dry_run")]
        real_signing: bool,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Output directory (default: dist/<tag>/)
        #[arg(long, value_name = "DIR")]
        dist: Option<PathBuf>,
        /// With --dry-run: build from a tree with uncommitted changes
        #[arg(long)]
        allow_dirty: bool,
        /// Plain log lines only (no progress bars)
        #[arg(long, short)]
        quiet: bool,
    },
    /// Build one target's share of a split release (a CI runner's job)
    Build {
        tag: Tag,
        /// The target triple this runner builds
        #[arg(long, value_name = "TRIPLE")]
        target: String,
        /// Where the share goes (default: dist/shares/<tag>/<target>/)
        #[arg(long, value_name = "DIR")]
        dist: Option<PathBuf>,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[arg(long, short)]
        quiet: bool,
    },
    /// Merge runners' shares, then SBOM, checksums, sign, attest, verify and publish
    Assemble {
        tag: Tag,
        /// The share directories written by `xrelease build --target`
        #[arg(required = true, value_name = "SHARE")]
        shares: Vec<PathBuf>,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, requires = "dry_run")]
        real_signing: bool,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        dist: Option<PathBuf>,
        #[arg(long, short)]
        quiet: bool,
    },
    /// Show what would be built and how it would be named (`--json`: the CI matrix)
    Plan {
        tag: Tag,
        #[arg(long)]
        json: bool,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Verify a release directory: checksums, signatures, SBOMs, attestations (exit 3 when a check
    /// fails); keyless, the trusted root comes over TUF unless --trusted-root or --offline
    Verify {
        dir: PathBuf,
        /// The cosign public key the release must be signed with
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "certificate_identity"
        )]
        key: Option<PathBuf>,
        /// Keyless: the exact certificate identity (SAN) that must have signed, e.g.
        /// https://github.com/OWNER/REPO/.github/workflows/release.yml@refs/tags/v1.0.0
        #[arg(
            long,
            value_name = "ID",
            conflicts_with = "key",
            requires = "certificate_oidc_issuer"
        )]
        certificate_identity: Option<String>,
        /// Keyless: the exact OIDC issuer of that identity, e.g.
        /// https://token.actions.githubusercontent.com
        #[arg(long, value_name = "URL", requires = "certificate_identity")]
        certificate_oidc_issuer: Option<String>,
        /// Keyless: the Sigstore trusted_root.json to verify against (default: the one Sigstore's
        /// TUF repository publishes, fetched and verified over TUF)
        #[arg(long, value_name = "FILE", requires = "certificate_identity")]
        trusted_root: Option<PathBuf>,
        /// Keyless: the TUF repository to fetch the trusted root from
        #[arg(
            long,
            value_name = "URL",
            requires = "certificate_identity",
            conflicts_with = "trusted_root",
            default_value = crate::tuf::SIGSTORE_TUF_URL
        )]
        tuf_url: String,
        /// Keyless: that repository's initial root.json (built in for Sigstore's)
        #[arg(
            long,
            value_name = "FILE",
            requires = "certificate_identity",
            conflicts_with = "trusted_root"
        )]
        tuf_root: Option<PathBuf>,
        /// Keyless: no network; re-verify and use the trusted root an earlier run cached
        #[arg(
            long,
            requires = "certificate_identity",
            conflicts_with = "trusted_root"
        )]
        offline: bool,
        /// The repository the provenance must name (OWNER/REPO)
        #[arg(long, value_name = "OWNER/REPO")]
        repo: Option<String>,
        /// The tag the provenance must name
        #[arg(long)]
        tag: Option<String>,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Verify one artifact (a path, or sha256:<hex>) against one Sigstore bundle, as the Sigstore
    /// conformance suite drives a client (exit 0 verified, 3 refused, 2 bad usage)
    VerifyBundle {
        /// The artifact's path, or its digest as sha256:<64 hex>
        #[arg(value_name = "FILE_OR_DIGEST")]
        artifact: String,
        /// The Sigstore bundle (.sigstore.json)
        #[arg(long, value_name = "FILE")]
        bundle: PathBuf,
        /// The public key (PEM) a managed-key bundle must be signed with
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "certificate_identity"
        )]
        key: Option<PathBuf>,
        /// Keyless: the exact certificate identity (SAN) that must have signed
        #[arg(
            long,
            value_name = "ID",
            conflicts_with = "key",
            requires = "certificate_oidc_issuer"
        )]
        certificate_identity: Option<String>,
        /// Keyless: the exact OIDC issuer of that identity
        #[arg(long, value_name = "URL", requires = "certificate_identity")]
        certificate_oidc_issuer: Option<String>,
        /// The Sigstore trusted_root.json (default: the one Sigstore's TUF repository
        /// publishes, fetched and verified over TUF)
        #[arg(long, value_name = "FILE")]
        trusted_root: Option<PathBuf>,
        /// The TUF repository to fetch the trusted root from
        #[arg(
            long,
            value_name = "URL",
            conflicts_with = "trusted_root",
            default_value = crate::tuf::SIGSTORE_TUF_URL
        )]
        tuf_url: String,
        /// That repository's initial root.json (built in for Sigstore's)
        #[arg(long, value_name = "FILE", conflicts_with = "trusted_root")]
        tuf_root: Option<PathBuf>,
        /// No network; re-verify and use the trusted root an earlier run cached
        #[arg(long, conflicts_with = "trusted_root")]
        offline: bool,
    },
    /// Write a cosign-compatible key pair (password from COSIGN_PASSWORD, or asked)
    Keygen {
        #[arg(long, value_name = "PREFIX", default_value = "cosign")]
        output_prefix: PathBuf,
    },
    /// Write a commented release.toml (if absent) and .github/workflows/release.yml
    Init {
        /// Replace an existing workflow that differs from what release.toml generates
        #[arg(long)]
        force: bool,
    },
    /// Check the toolchain, linker and runner of every target; `--fix` installs what it can
    Doctor {
        #[arg(long)]
        fix: bool,
        /// Only this target (a CI runner prepares its own)
        #[arg(long, value_name = "TRIPLE")]
        target: Option<String>,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Runs the command line `args` (including the program name) and returns the exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    let dir = match std::env::current_dir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: cannot read the current directory: {e}");
            return exit::FAILURE;
        }
    };
    match run(&dir, cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn run(dir: &Path, command: Command) -> Result<i32> {
    match command {
        Command::Release {
            tag,
            dry_run,
            real_signing,
            config,
            dist,
            allow_dirty,
            quiet,
        } => {
            if allow_dirty && !dry_run {
                return Err(Error::Preflight(
                    "--allow-dirty is only accepted with --dry-run: a real release is built from a clean commit".into(),
                ));
            }
            let mode = if dry_run { Mode::Rehearsal } else { Mode::Real };
            let ctx = Context::load(Inputs {
                dir,
                config: config.as_deref(),
                tag,
                dist: dist.as_deref(),
                mode,
                allow_dirty,
                quiet,
            })?;
            let mut signer = choose_signer(&ctx, dry_run && !real_signing)?;
            let mut publisher = choose_publisher(dry_run)?;
            let report = crate::release(&ctx, &mut signer, &mut publisher)?;
            print_summary(&ctx, &report);
            Ok(exit::OK)
        }
        Command::Build {
            tag,
            target,
            dist,
            config,
            quiet,
        } => {
            let dist = dist.unwrap_or_else(|| {
                PathBuf::from("dist/shares")
                    .join(tag.to_string())
                    .join(&target)
            });
            // A share is only binaries: whether the tag exists is the assembling job's question.
            let mut ctx = Context::load(Inputs {
                dir,
                config: config.as_deref(),
                tag,
                dist: Some(&dist),
                mode: Mode::Rehearsal,
                allow_dirty: false,
                quiet,
            })?;
            ctx.plan.only_target(&target)?;
            let manifest = crate::build_share(&ctx)?;
            println!(
                "{} share for {}: {} binaries in {}",
                ctx.plan.tag,
                target,
                manifest.binaries().count(),
                ctx.dist.display()
            );
            Ok(exit::OK)
        }
        Command::Assemble {
            tag,
            shares,
            dry_run,
            real_signing,
            config,
            dist,
            quiet,
        } => {
            let ctx = Context::load(Inputs {
                dir,
                config: config.as_deref(),
                tag,
                dist: dist.as_deref(),
                mode: if dry_run { Mode::Rehearsal } else { Mode::Real },
                allow_dirty: false,
                quiet,
            })?;
            let mut signer = choose_signer(&ctx, dry_run && !real_signing)?;
            let mut publisher = choose_publisher(dry_run)?;
            let shares: Vec<PathBuf> = shares.iter().map(|s| dir.join(s)).collect();
            let report = crate::assemble(&ctx, &shares, &mut signer, &mut publisher)?;
            print_summary(&ctx, &report);
            Ok(exit::OK)
        }
        Command::Plan { tag, json, config } => {
            let config = context::load_config(dir, config.as_deref())?;
            let workspace = Workspace::load(dir)?;
            let plan = crate::plan::plan(&config, &workspace, &tag)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&plan).expect("plain data")
                );
            } else {
                println!(
                    "{} ({}{})",
                    plan.tag,
                    plan.version,
                    if plan.prerelease { ", pre-release" } else { "" }
                );
                for a in &plan.artifacts {
                    println!("  {:<44} {}:{} for {}", a.name, a.package, a.bin, a.target);
                }
            }
            Ok(exit::OK)
        }
        Command::Verify {
            dir: release_dir,
            key,
            certificate_identity,
            certificate_oidc_issuer,
            trusted_root,
            tuf_url,
            tuf_root,
            offline,
            repo,
            tag,
            json,
        } => {
            let policy = match (key, certificate_identity, certificate_oidc_issuer) {
                (Some(key), _, _) => Policy::Key(
                    PublicKey::read(&dir.join(&key)).map_err(|e| Error::Config(e.to_string()))?,
                ),
                (None, Some(identity), Some(issuer)) => {
                    let source = TrustSource::new(
                        trusted_root.map(|p| dir.join(p)),
                        Some(tuf_url),
                        tuf_root.map(|p| dir.join(p)),
                        offline,
                    );
                    let resolved = source
                        .resolve(&crate::signing::process_env)
                        .map_err(trust_error)?;
                    if let Some(note) = resolved.note {
                        eprintln!("note: {note}");
                    }
                    Policy::Keyless {
                        identity,
                        issuer,
                        root: resolved.root,
                    }
                }
                _ => unreachable!("clap requires --key or both certificate flags"),
            };
            let expect = Expect {
                repository: repo,
                tag,
            };
            let report = verify::verify(&dir.join(&release_dir), &policy, &expect);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("plain data")
                );
            } else {
                print!("{}", report.render());
            }
            Ok(if report.ok { exit::OK } else { exit::VERIFY })
        }
        Command::VerifyBundle {
            artifact,
            bundle,
            key,
            certificate_identity,
            certificate_oidc_issuer,
            trusted_root,
            tuf_url,
            tuf_root,
            offline,
        } => {
            let source = TrustSource::new(
                trusted_root.map(|p| dir.join(p)),
                Some(tuf_url),
                tuf_root.map(|p| dir.join(p)),
                offline,
            );
            let signer = match (key, certificate_identity, certificate_oidc_issuer) {
                (Some(key), _, _) => BundleSigner::Key(dir.join(key)),
                (None, Some(identity), Some(issuer)) => BundleSigner::Identity { identity, issuer },
                _ => unreachable!("clap requires --key or both certificate flags"),
            };
            let verified = crate::verify::keyless::verify_artifact(
                &artifact,
                &dir.join(bundle),
                &signer,
                &source,
            )?;
            println!("OK: {verified}");
            Ok(exit::OK)
        }
        Command::Keygen { output_prefix } => {
            let password = crate::signing::password(true)?;
            let files = crate::signing::key::keygen(&dir.join(&output_prefix), &password)
                .map_err(|e| Error::Preflight(e.to_string()))?;
            println!(
                "wrote {} (encrypted) and {}",
                files.private_key.display(),
                files.public_key.display()
            );
            Ok(exit::OK)
        }
        Command::Init { force } => {
            let repository = std::env::var("GITHUB_REPOSITORY").ok().or_else(|| {
                crate::shell::Shell::new(dir)
                    .ok()
                    .and_then(|sh| crate::git::Git::new(&sh).github_remote())
            });
            for file in crate::init::run(dir, repository, force)? {
                println!("wrote {file}");
            }
            Ok(exit::OK)
        }
        Command::Doctor {
            fix,
            config,
            target,
        } => {
            let mut config = context::load_config(dir, config.as_deref())?;
            if let Some(triple) = target {
                config.targets.retain(|t| t.triple == triple);
                if config.targets.is_empty() {
                    return Err(Error::Config(format!(
                        "`{triple}` is not one of release.toml's targets"
                    )));
                }
            }
            let ready = crate::doctor::run(dir, &config, fix, &Ui::new(false))?;
            Ok(if ready { exit::OK } else { exit::FAILURE })
        }
    }
}

/// The one place the signing mode is decided: rehearsals sign with a throwaway key unless
/// --real-signing asks for the configured signer.
fn choose_signer(ctx: &Context, throwaway: bool) -> Result<Signer> {
    let signer = if throwaway {
        Signer::throwaway()?
    } else {
        configured_signer(&ctx.config)?
    };
    ctx.ui.info(format!("signing with {}", signer.describe()));
    Ok(signer)
}

/// ...and rehearsals record the GitHub requests instead of sending them.
fn choose_publisher(dry_run: bool) -> Result<Publisher> {
    if dry_run {
        Publisher::record()
    } else {
        Publisher::github()
    }
}

fn configured_signer(config: &crate::config::Config) -> Result<Signer> {
    match config.sign.mode {
        SignMode::Key => Signer::from_key_file(&config.sign.key),
        SignMode::Keyless => Signer::keyless(&config.sign, &crate::signing::process_env),
    }
}

fn print_summary(ctx: &Context, report: &crate::Report) {
    println!(
        "{} — {} artifacts in {}",
        ctx.plan.tag,
        report.manifest.artifacts.len(),
        ctx.dist.display()
    );
    for a in &report.manifest.artifacts {
        println!(
            "  {:<44} {:>10}  sha256:{}",
            a.name,
            human_size(a.size),
            &a.sha256[..16]
        );
    }
    println!("{}", report.published.summary(&ctx.plan.tag));
}

/// A trusted root that failed TUF verification fails the verification (exit 3); one that could
/// not be obtained (network, cache, flags) is an error of the invocation (exit 2).
fn trust_error(err: KeylessError) -> Error {
    match &err {
        KeylessError::Tuf(tuf) if tuf.is_untrusted() => Error::Verification(format!(
            "the trusted root could not be verified over TUF: {err}"
        )),
        _ => Error::Config(err.to_string()),
    }
}
