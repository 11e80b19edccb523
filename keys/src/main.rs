//! `mig-keys`: generate investigator keys, sign actions, verify them.
//!
//! Exit codes: 0 success (for `verify`: the action is valid), 1 the action
//! was verified and refused, 2 anything else went wrong (bad arguments,
//! unreadable files, wrong passphrase).

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use mig_keys::{
    KdfCost, PromptingPassphrase, SecretKey, fill_launch_defaults, load_acl, load_action,
    load_public_key, load_secret_key, load_trust_store, sign_action, write_key_files,
};
use mig_proto::time::{format_duration_seconds, parse_duration_seconds};
use mig_proto::verify::{
    DEFAULT_CLOCK_SKEW_SECONDS, DEFAULT_MAX_VALIDITY_SECONDS, SignerStatus, Verdict,
};
use mig_proto::{Action, SignedAction, Timestamp, TrustStore, VerifyPolicy, verify};
use zeroize::Zeroizing;

const EXAMPLE_ACTION: &str = include_str!("../../docs/examples/linux-backdoor-2014.json");

#[derive(Parser)]
#[command(
    name = "mig-keys",
    version,
    about = "Investigator keys: generate, sign actions, verify them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a key pair: KEY (secret, mode 0600) and KEY.pub.
    Generate {
        /// Where to write the secret key; the public key goes to OUT.pub.
        #[arg(long)]
        out: PathBuf,
        /// Who the key belongs to, e.g. "Alice <alice@example.org>".
        #[arg(long, default_value = "")]
        comment: String,
        /// Store the key unencrypted (for tests and demos only).
        #[arg(long, conflicts_with = "passphrase_file")]
        no_passphrase: bool,
        /// Read the passphrase from the first line of this file.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Sign an action file, filling in a validity window and nonce if it
    /// has none yet. A co-signer runs this again on the signed file.
    Sign {
        /// The secret key to sign with.
        #[arg(long)]
        key: PathBuf,
        /// The action (JSON).
        action: PathBuf,
        /// Where to write the signed action (default: standard output).
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// How long the action stays valid after now (like 300s, 30m, 2h).
        #[arg(short = 'e', long, default_value = "300s", value_parser = parse_duration)]
        expire: i64,
        /// Read the key's passphrase from the first line of this file.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Verify an action's signatures, validity window, target and ACL
    /// weights as an agent would. Exits 0 only for a valid action.
    Verify {
        /// A trusted investigator public key (repeat for several).
        #[arg(long = "trust", required = true)]
        trusted: Vec<PathBuf>,
        /// The ACL (MIG's JSON, or TOML). Without one, every trusted key
        /// may sign for every module on its own.
        #[arg(long)]
        acl: Option<PathBuf>,
        /// The action (JSON).
        action: PathBuf,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
        /// The longest validity window accepted.
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        max_validity: i64,
        /// Verify as of this time (RFC 3339) instead of now.
        #[arg(long, value_parser = parse_time)]
        at: Option<Timestamp>,
    },
    /// Print the fingerprint of a public key file.
    Fingerprint { public_key: PathBuf },
    /// Generate a throwaway key, sign the built-in example action, verify
    /// it, and show a tampered copy being refused.
    Demo,
}

fn parse_duration(text: &str) -> Result<i64, String> {
    parse_duration_seconds(text).map_err(|error| error.to_string())
}

fn parse_time(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(text).map_err(|error| error.to_string())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("mig-keys: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Generate {
            out,
            comment,
            no_passphrase,
            passphrase_file,
            force,
        } => {
            let passphrase = if no_passphrase {
                None
            } else if let Some(file) = &passphrase_file {
                Some(read_passphrase_file(file)?)
            } else if std::io::stdin().is_terminal() {
                Some(prompt_new_passphrase()?)
            } else {
                bail!(
                    "no passphrase: give --passphrase-file F, or --no-passphrase for an unencrypted key"
                )
            };
            let key = SecretKey::generate(&comment)?;
            let public_path = write_key_files(
                &key,
                &out,
                passphrase.as_ref().map(|text| text.as_str()),
                KdfCost::default(),
                force,
            )?;
            eprintln!(
                "wrote {} (secret, mode 0600) and {}",
                out.display(),
                public_path.display()
            );
            println!("{}", key.fingerprint());
            Ok(ExitCode::SUCCESS)
        }
        Command::Sign {
            key,
            action,
            out,
            expire,
            passphrase_file,
        } => {
            let key = load_secret_key(
                &key,
                &PromptingPassphrase {
                    file: passphrase_file,
                },
            )?;
            let mut loaded = load_action(&action)?;
            fill_launch_defaults(&mut loaded, now()?, expire)?;
            sign_action(&mut loaded, &key)?;
            let text = loaded.to_json_pretty() + "\n";
            match &out {
                Some(path) => std::fs::write(path, &text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout().write_all(text.as_bytes())?,
            }
            eprintln!(
                "signed action {} with key {} ({} signature{})",
                loaded.id()?,
                key.fingerprint(),
                loaded.signatures.len(),
                if loaded.signatures.len() == 1 {
                    ""
                } else {
                    "s"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            trusted,
            acl,
            action,
            json,
            max_validity,
            at,
        } => {
            let trust = load_trust_store(&trusted)?;
            let acl = match &acl {
                Some(path) => load_acl(path)?,
                None => trust.default_acl(),
            };
            let loaded = load_action(&action)?;
            let signed = SignedAction::from_action(&loaded)?;
            let policy = VerifyPolicy {
                trusted: &trust,
                acl: &acl,
                now: match at {
                    Some(time) => time,
                    None => now()?,
                },
                max_validity_seconds: max_validity,
                clock_skew_seconds: DEFAULT_CLOCK_SKEW_SECONDS,
            };
            let verdict = verify(&signed, &policy);
            if json {
                println!("{}", verdict_json(&verdict, &loaded));
            } else {
                print!("{}", verdict_text(&verdict, &loaded));
            }
            Ok(if verdict.is_valid() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Fingerprint { public_key } => {
            let key = load_public_key(&public_key)?;
            println!("{}", key.fingerprint());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => demo(),
    }
}

fn now() -> anyhow::Result<Timestamp> {
    Ok(Timestamp::from_system_time(SystemTime::now()))
}

fn read_passphrase_file(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    Ok(Zeroizing::new(text.lines().next().unwrap_or("").to_owned()))
}

fn prompt_new_passphrase() -> anyhow::Result<Zeroizing<String>> {
    let first = Zeroizing::new(rpassword::prompt_password("passphrase for the new key: ")?);
    let second = Zeroizing::new(rpassword::prompt_password("the same passphrase again: ")?);
    if first != second {
        bail!("the passphrases differ");
    }
    Ok(first)
}

fn verdict_text(verdict: &Verdict, action: &Action) -> String {
    let mut text = String::new();
    let mut line = |label: &str, value: String| text.push_str(&format!("{label:<8} {value}\n"));
    line("action", format!("{}  {}", verdict.action_id, action.name));
    line("target", action.target.clone());
    if let (Some(from), Some(until)) = (action.validfrom, action.expireafter) {
        line(
            "window",
            format!(
                "{from} .. {until} ({})",
                format_duration_seconds(until.seconds_since(from))
            ),
        );
    }
    for signer in &verdict.signers {
        let status = match signer.status {
            SignerStatus::Verified => "verified",
            SignerStatus::BadSignature => "BAD SIGNATURE",
            SignerStatus::UnknownKey => "UNKNOWN KEY",
            SignerStatus::Duplicate => "SIGNED TWICE",
        };
        let name = signer.name.as_deref().unwrap_or("");
        line(
            "signer",
            format!("{}  {status}  {name}", signer.fingerprint)
                .trim_end()
                .to_owned(),
        );
    }
    for module in &verdict.modules {
        let entry = module
            .acl_entry
            .as_deref()
            .map_or("no acl entry".to_owned(), |entry| {
                format!("acl entry '{entry}'")
            });
        line(
            "module",
            format!(
                "{}: weight {} of {} needed ({entry})",
                module.module, module.have, module.need
            ),
        );
    }
    match &verdict.outcome {
        Ok(()) => text.push_str("VALID\n"),
        Err(error) => text.push_str(&format!("INVALID: {error}\n")),
    }
    text
}

fn verdict_json(verdict: &Verdict, action: &Action) -> String {
    let mut value = serde_json::to_value(verdict).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("name".into(), action.name.clone().into());
        map.insert("target".into(), action.target.clone().into());
        map.insert(
            "validfrom".into(),
            serde_json::to_value(action.validfrom).unwrap_or_default(),
        );
        map.insert(
            "expireafter".into(),
            serde_json::to_value(action.expireafter).unwrap_or_default(),
        );
    }
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// Everything the README's first command shows, in one process.
fn demo() -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("mig-keys-demo-")
        .tempdir()?;
    demo_in(dir.path())
}

fn demo_in(dir: &Path) -> anyhow::Result<ExitCode> {
    let key_path = dir.join("investigator.key");
    let key = SecretKey::generate("Demo Investigator <demo@example.org>")?;
    let public_path = write_key_files(&key, &key_path, None, KdfCost::default(), false)?;
    println!("1. generated a key: fingerprint {}", key.fingerprint());
    println!(
        "   (mig-keys generate --out {} --no-passphrase)\n",
        key_path.display()
    );

    let mut action = Action::from_json(EXAMPLE_ACTION)?;
    fill_launch_defaults(&mut action, now()?, 300)?;
    sign_action(&mut action, &key)?;
    let signed_path = dir.join("linux-backdoor-2014.signed.json");
    std::fs::write(&signed_path, action.to_json_pretty())?;
    println!("2. signed the example action from the original MIG description");
    println!(
        "   (mig-keys sign --key {} ACTION.json -o {})\n",
        key_path.display(),
        signed_path.display()
    );

    let trust = TrustStore::new([load_public_key(&public_path)?]);
    let acl = trust.default_acl();
    let policy = VerifyPolicy {
        trusted: &trust,
        acl: &acl,
        now: now()?,
        max_validity_seconds: DEFAULT_MAX_VALIDITY_SECONDS,
        clock_skew_seconds: DEFAULT_CLOCK_SKEW_SECONDS,
    };
    let verdict = verify(&SignedAction::from_action(&action)?, &policy);
    println!(
        "3. verified it as an agent would (mig-keys verify --trust {} ...):",
        public_path.display()
    );
    print!("{}", indent(&verdict_text(&verdict, &action)));

    let mut tampered = action.clone();
    tampered.target = "agents.os = 'darwin'".into();
    let tampered_verdict = verify(&SignedAction::from_action(&tampered)?, &policy);
    println!(
        "\n4. changed the signed target to \"{}\" and verified again:",
        tampered.target
    );
    print!("{}", indent(&verdict_text(&tampered_verdict, &tampered)));

    if verdict.is_valid() && !tampered_verdict.is_valid() {
        println!("\ndemo ok: the signed action verifies, the tampered one is refused");
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("the demo did not behave as expected")
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("   {line}\n")).collect()
}
