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
    /// Verify a pushed container image of a release: its layers, and its cosign v3 signature,
    /// provenance and SBOM attestations under the key or identity (exit 3 when a check fails,
    /// 2 when the registry cannot be reached)
    VerifyImage {
        /// `host/path:tag` (or `@sha256:...`)
        reference: String,
        /// The cosign public key the release was signed with
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
        /// Keyless: the Sigstore trusted_root.json (default: Sigstore's, fetched over TUF)
        #[arg(long, value_name = "FILE", requires = "certificate_identity")]
        trusted_root: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Verify a release directory: checksums, signatures, SBOMs, attestations (exit 3 when a check
    /// fails); keyless, the trusted root comes over TUF unless --trusted-root or --offline.
    /// With --from DIR: just the given binaries, against the release's metadata in DIR
    Verify {
        /// The release directory; with --from, the downloaded binaries to verify
        #[arg(required = true, value_name = "DIR | FILE...")]
        paths: Vec<PathBuf>,
        /// Verify only the FILEs given, with SHA256SUMS, its signature, the provenance and
        /// their SBOMs and attestations from this directory (the rest may be absent)
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// Like --from, with the metadata fetched from the published GitHub release
        /// (anonymous; GITHUB_TOKEN when set; GITHUB_API_URL for Enterprise)
        #[arg(long, value_name = "OWNER/REPO@TAG", conflicts_with = "from")]
        github: Option<String>,
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
            default_value = crate::signing::tuf::SIGSTORE_TUF_URL
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
        /// in-toto: also verify root.layout (signed by this owner key) and its links over the
        /// directory, as `in-toto-verify` does
        #[arg(long, value_name = "FILE")]
        layout_key: Option<PathBuf>,
    },
    /// in-toto: write .in_toto/root.layout from `[in-toto]`, signed by the project owner's key
    Layout {
        /// The owner's cosign private key (password from COSIGN_PASSWORD, or asked)
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Where to write it
        #[arg(long, value_name = "FILE", default_value = crate::intoto::LAYOUT_PATH)]
        output: PathBuf,
    },
    /// in-toto: create the annotated tag TAG at HEAD carrying the `tag` link signed by a maintainer
    Tag {
        tag: Tag,
        /// A maintainer's cosign private key (password from COSIGN_PASSWORD, or asked)
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// in-toto, threshold above 1: rebuild the checked-out tag, refuse if a binary differs from
    /// the draft release's, else upload this builder's signed `build` links to the draft
    Rebuild {
        tag: Tag,
        /// A builder's cosign private key: the CI key or a maintainer's
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Where the rebuild goes (default: dist/rebuild/<tag>/)
        #[arg(long, value_name = "DIR")]
        dist: Option<PathBuf>,
        #[arg(long, short)]
        quiet: bool,
    },
    /// in-toto, threshold above 1: verify the layout over the draft release's files, then publish it
    Publish {
        tag: Tag,
        /// The project owner's public key, which signed root.layout
        #[arg(long, value_name = "FILE")]
        layout_key: PathBuf,
        /// The release directory CI verified (default: dist/<tag>/)
        #[arg(long, value_name = "DIR")]
        dist: Option<PathBuf>,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
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
            default_value = crate::signing::tuf::SIGSTORE_TUF_URL
        )]
        tuf_url: String,
        /// That repository's initial root.json (built in for Sigstore's)
        #[arg(long, value_name = "FILE", conflicts_with = "trusted_root")]
        tuf_root: Option<PathBuf>,
        /// No network; re-verify and use the trusted root an earlier run cached
        #[arg(long, conflicts_with = "trusted_root")]
        offline: bool,
    },
    /// Sign one file into one Sigstore bundle, keyless, as the Sigstore conformance suite drives
    /// a client (exit 0 signed, 2 bad usage, 1 failure)
    SignBundle {
        /// The file to sign (with --in-toto: an in-toto statement)
        #[arg(value_name = "FILE")]
        input: PathBuf,
        /// The OIDC identity token for Fulcio
        #[arg(long, value_name = "TOKEN")]
        identity_token: String,
        /// Where to write the bundle (.sigstore.json)
        #[arg(long, value_name = "FILE")]
        bundle: PathBuf,
        /// The Sigstore trusted_root.json of a private instance
        #[arg(long, value_name = "FILE")]
        trusted_root: Option<PathBuf>,
        /// A signing config v0.2 naming Fulcio, Rekor and the TSA (default: the one Sigstore's
        /// TUF repository publishes)
        #[arg(long, value_name = "FILE")]
        signing_config: Option<PathBuf>,
        /// FILE is an in-toto statement: sign it as a DSSE envelope
        #[arg(long)]
        in_toto: bool,
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
        /// Write the workflow as .github/workflows/NAME (keeps an existing release.yml)
        #[arg(long, value_name = "NAME")]
        workflow_name: Option<String>,
        /// Also release the static musl targets (linux-amd64-musl, linux-arm64-musl)
        #[arg(long)]
        musl: bool,
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
            paths,
            from,
            github,
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
            layout_key,
        } => {
            let layout_key = layout_key
                .map(|k| {
                    crate::intoto::keys::Key::read(&dir.join(k))
                        .map_err(|e| Error::Config(format!("--layout-key: {e}")))
                })
                .transpose()?;
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
                    Policy::Keyless {
                        identity,
                        issuer,
                        root: resolved.root,
                    }
                }
                _ => unreachable!("clap requires --key or both certificate flags"),
            };
            let mut expect = Expect {
                repository: repo,
                tag,
            };
            // Kept until the report is made: the fetched metadata lives there.
            let mut _fetched = None;
            let from = match github {
                None => from,
                Some(spec) => {
                    let (dir, repository, tag) = fetch_from_github(&spec, &paths)?;
                    expect.repository.get_or_insert(repository);
                    expect.tag.get_or_insert(tag);
                    let path = dir.path().to_path_buf();
                    _fetched = Some(dir);
                    Some(path)
                }
            };
            let mut report = match (from, paths.as_slice()) {
                (Some(from), files) => {
                    let files: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
                    verify::verify_files(&files, &dir.join(from), &policy, &expect)
                }
                (None, [release_dir]) => verify::verify(&dir.join(release_dir), &policy, &expect),
                (None, _) => {
                    return Err(Error::Config(
                        "`xrelease verify` takes one release directory, or binaries with `--from DIR` \
                         (the directory holding SHA256SUMS, its signature and the attestations)"
                            .into(),
                    ));
                }
            };
            if let Some(owner) = &layout_key {
                crate::intoto::verify::add_to_report(&mut report, owner);
            }
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
        Command::Layout {
            key,
            config,
            output,
        } => {
            let config = context::load_config(dir, config.as_deref())?;
            let owner =
                crate::intoto::commands::write_layout(&config, &dir.join(key), &dir.join(&output))?;
            println!(
                "wrote {} signed by the owner key {owner}; commit it. Users verify with \
                 `in-toto-verify --layout root.layout --verification-keys owner.pub` in the downloaded release",
                output.display()
            );
            Ok(exit::OK)
        }
        Command::Tag { tag, key, config } => {
            let config = context::load_config(dir, config.as_deref())?;
            let link =
                crate::intoto::commands::tag(dir, &config, &tag.to_string(), &dir.join(key))?;
            println!(
                "tagged {tag} with the signed in-toto link {link}; push it: git push origin {tag}"
            );
            Ok(exit::OK)
        }
        Command::Rebuild {
            tag,
            key,
            config,
            dist,
            quiet,
        } => {
            let dist = dist.unwrap_or_else(|| PathBuf::from("dist/rebuild").join(tag.to_string()));
            let ctx = Context::load(Inputs {
                dir,
                config: config.as_deref(),
                tag,
                dist: Some(&dist),
                mode: Mode::Real,
                allow_dirty: false,
                quiet,
            })?;
            let links = crate::intoto::threshold::rebuild(&ctx, &dir.join(key))?;
            println!(
                "{}: the rebuild matches the draft; uploaded {}",
                ctx.plan.tag,
                links.join(", ")
            );
            Ok(exit::OK)
        }
        Command::Publish {
            tag,
            layout_key,
            dist,
            config,
        } => {
            let config = context::load_config(dir, config.as_deref())?;
            let owner = crate::intoto::keys::Key::read(&dir.join(layout_key))
                .map_err(|e| Error::Config(format!("--layout-key: {e}")))?;
            let dist =
                dir.join(dist.unwrap_or_else(|| PathBuf::from("dist").join(tag.to_string())));
            let repository = config.github_repository.clone().or_else(|| {
                std::env::var("GITHUB_REPOSITORY")
                    .ok()
                    .filter(|r| crate::config::check_repository(r).is_ok())
            });
            let (url, lines) =
                crate::intoto::threshold::publish(repository, &tag.to_string(), &dist, &owner)?;
            for line in lines {
                println!("[PASS] in-toto {line}");
            }
            println!("published {tag}: {url}");
            Ok(exit::OK)
        }
        Command::VerifyImage {
            reference,
            key,
            certificate_identity,
            certificate_oidc_issuer,
            trusted_root,
            json,
        } => {
            let policy = match (key, certificate_identity, certificate_oidc_issuer) {
                (Some(key), _, _) => Policy::Key(
                    PublicKey::read(&dir.join(&key)).map_err(|e| Error::Config(e.to_string()))?,
                ),
                (None, Some(identity), Some(issuer)) => {
                    let source = TrustSource::new(
                        trusted_root.map(|p| dir.join(p)),
                        Some(crate::signing::tuf::SIGSTORE_TUF_URL.to_string()),
                        None,
                        false,
                    );
                    let resolved = source
                        .resolve(&crate::signing::process_env)
                        .map_err(trust_error)?;
                    Policy::Keyless {
                        identity,
                        issuer,
                        root: resolved.root,
                    }
                }
                _ => unreachable!("clap requires --key or both certificate flags"),
            };
            match verify::verify_image(&reference, &policy) {
                Err(why) => {
                    eprintln!("error: {why}");
                    Ok(exit::USAGE)
                }
                Ok(report) => {
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
            }
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
        Command::SignBundle {
            input,
            identity_token,
            bundle,
            trusted_root,
            signing_config,
            in_toto,
        } => {
            let request = crate::signing::sign_bundle::Request {
                token: identity_token,
                input: dir.join(input),
                bundle: dir.join(bundle),
                trusted_root: trusted_root.map(|p| dir.join(p)),
                signing_config: signing_config.map(|p| dir.join(p)),
                in_toto,
            };
            let done = crate::signing::sign_bundle::run(request, &crate::signing::process_env)?;
            println!("{done}");
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
        Command::Init {
            force,
            workflow_name,
            musl,
        } => {
            let repository = std::env::var("GITHUB_REPOSITORY").ok().or_else(|| {
                crate::shell::Shell::new(dir)
                    .ok()
                    .and_then(|sh| crate::git::Git::new(&sh).github_remote())
            });
            let options = crate::init::Options {
                repository,
                force,
                workflow_name,
                musl,
            };
            let outcome = crate::init::run(dir, options)?;
            for file in outcome.written {
                println!("wrote {file}");
            }
            for note in outcome.notes {
                println!("note: {note}");
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
            "  {:<44} {:>10}  sha256:{}{}",
            a.name,
            human_size(a.size),
            &a.sha256[..16],
            report
                .manifest
                .glibc
                .get(&a.name)
                .map(|g| format!("  glibc >= {g}"))
                .unwrap_or_default()
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

/// `--github OWNER/REPO@TAG`: the release's metadata for `files`, fetched into a fresh
/// temporary directory (removed when dropped); the repository and tag become the expected ones.
fn fetch_from_github(spec: &str, files: &[PathBuf]) -> Result<(TempDir, String, String), Error> {
    use crate::github::{ClientConfig, Repo, Token};
    let bad = || {
        Error::Config(format!(
            "--github `{spec}`: expected OWNER/REPO@TAG, e.g. rust-lang/cargo@v1.0.0"
        ))
    };
    let (repository, tag) = spec.split_once('@').ok_or_else(bad)?;
    let repo: Repo = repository.parse().map_err(|_| bad())?;
    if tag.is_empty() {
        return Err(bad());
    }
    let config = ClientConfig::from_env().map_err(|e| Error::Config(e.to_string()))?;
    let token = match std::env::var("GITHUB_TOKEN") {
        Ok(_) => Some(Token::from_env().map_err(|e| Error::Config(e.to_string()))?),
        Err(_) => None,
    };
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().and_then(|n| n.to_str()).map(str::to_string))
        .collect();
    let wanted: std::collections::BTreeSet<String> =
        crate::layout::metadata_for(names.iter().map(String::as_str))
            .into_iter()
            .collect();
    let dir = TempDir::new()?;
    crate::github::fetch_release_assets(
        &config.api_url,
        &repo,
        tag,
        token.as_ref(),
        &|name| wanted.contains(name),
        dir.path(),
    )
    .map_err(|e| Error::Publish(e.to_string()))?;
    Ok((dir, repo.to_string(), tag.to_string()))
}

/// A directory under the system's temporary directory, removed with what it holds when
/// dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, Error> {
        let path = std::env::temp_dir().join(format!("xrelease-verify-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&path).map_err(Error::io("cannot create", &path))?;
        Ok(TempDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
