//! The command line, one parser for the one-shot form and the shell.
//!
//! `mig <module> [options]` builds one operation the way MIG's `mig`
//! command did, with MIG's single-dash long flags (`-path`, `-sha2`,
//! `-lp`, `-t`, `-show`); [`normalize`] rewrites those to clap's `--path`
//! before parsing, so both spellings work and values that start with a
//! dash (`-mode ^-rwx`) stay values.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value as Json, json};

#[derive(Parser, Debug)]
#[command(
    name = "mig",
    version,
    about = "The MIG mesh console: ask the fleet a question, get answers from every agent",
    after_help = "With no command, `mig` opens the interactive shell.\n\
                  `mig <module> help` lists a module's flags with examples.\n\
                  Exit codes: 0 every targeted agent answered and none failed; 1 some failed, \
                  refused or stayed silent; 2 usage or other errors; 3 detached (agents may still \
                  be running); 130 cancelled before publishing."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalFlags,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How this console reaches the mesh and prints; from the configuration
/// file, overridden here.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalFlags {
    /// The configuration file (default ~/.config/mig/console.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The console's data directory: identity, history, roster (default ~/.mig).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A bootstrap peer (multiaddr with /p2p/<id>), repeatable.
    #[arg(long, global = true, value_name = "ADDRESS")]
    pub bootstrap: Vec<String>,
    /// Find agents on the local network by multicast DNS (no relay).
    #[arg(long, global = true)]
    pub mdns: bool,
    /// Addresses to listen on (agents may dial back here).
    #[arg(long, global = true, value_name = "ADDRESS")]
    pub listen: Vec<String>,
    /// The mesh's pre-shared key file, if it has one.
    #[arg(long, global = true, value_name = "FILE")]
    pub psk: Option<PathBuf>,
    /// The investigator's secret key.
    #[arg(long, global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// A file whose first line is the key's passphrase (else
    /// MIG_KEY_PASSPHRASE, else a prompt).
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// How to print results.
    #[arg(long, global = true, value_enum)]
    pub format: Option<Format>,
    /// Stop waiting for answers after this long (default 30s).
    #[arg(long, global = true, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<i64>,
    /// Launch without the countdown.
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// MIG's printer lines and a summary.
    Text,
    /// One row per finding.
    Table,
    /// The whole outcome as one JSON document.
    Json,
    /// One JSON object per agent and line.
    Ndjson,
    /// One row per finding, with a header.
    Csv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum Show {
    /// Agents that found something (MIG's default).
    #[default]
    Found,
    /// Agents that found nothing.
    Notfound,
    /// Every agent, with statistics and errors.
    All,
}

/// What every launch takes, MIG's global options.
#[derive(Args, Debug, Clone, Default)]
pub struct LaunchFlags {
    /// The target: an expression (`os = 'linux' AND tags->>'team' = 'web'`),
    /// a macro from the configuration, or `local` to run the module on this
    /// host with no mesh. Default: every agent online.
    #[arg(short = 't', long = "target", value_name = "TARGET")]
    pub target: Option<String>,
    /// How long the action stays valid.
    #[arg(short = 'e', long = "expire", default_value = "300s", value_parser = parse_duration, value_name = "DURATION")]
    pub expire: i64,
    /// The action's name.
    #[arg(short = 'n', long = "action-name", value_name = "NAME")]
    pub name: Option<String>,
    /// Sign the action and print it for a co-signer (`mig-keys sign`), then
    /// launch it with `mig -i FILE`.
    #[arg(short = 's', long = "sign-only")]
    pub sign_only: bool,
    /// Print the action (unsigned) and exit.
    #[arg(short = 'p', long = "print-only")]
    pub print_only: bool,
    /// Which agents' results to print.
    #[arg(long, value_enum, default_value = "found")]
    pub show: Show,
    /// Only agents that found something in that earlier action (they
    /// remember; the console's history is not needed).
    #[arg(long, value_name = "ACTION_ID")]
    pub target_found: Option<String>,
    /// Only agents that ran that earlier action and found nothing.
    #[arg(long, value_name = "ACTION_ID")]
    pub target_notfound: Option<String>,
    /// Keep collecting at least this long (agents coming online while the
    /// action is valid answer too).
    #[arg(long, default_value = "0s", value_parser = parse_duration, value_name = "DURATION")]
    pub collect_for: i64,
}

// One command is parsed per line typed; its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Search files by name, content, size, mode, mtime and hashes (MIG's file module).
    #[command(after_help = FILE_EXAMPLES)]
    File {
        #[command(flatten)]
        launch: LaunchFlags,
        #[command(flatten)]
        flags: FileFlags,
    },
    /// Look for listening ports, connections, IPs and MACs (MIG's netstat).
    #[command(after_help = NETSTAT_EXAMPLES)]
    Netstat {
        #[command(flatten)]
        launch: LaunchFlags,
        #[command(flatten)]
        flags: NetstatFlags,
    },
    /// Find installed packages by name and version (dpkg, rpm).
    #[command(after_help = PKG_EXAMPLES)]
    Pkg {
        #[command(flatten)]
        launch: LaunchFlags,
        #[command(flatten)]
        flags: PkgFlags,
    },
    /// Find running processes by name, command line, executable hash or user.
    #[command(after_help = PROCESS_EXAMPLES)]
    Process {
        #[command(flatten)]
        launch: LaunchFlags,
        #[command(flatten)]
        flags: ProcessFlags,
    },
    /// Inventory SSH keys (authorized_keys, known_hosts, key files) by fingerprint.
    #[command(after_help = SSHKEY_EXAMPLES)]
    Sshkey {
        #[command(flatten)]
        launch: LaunchFlags,
        #[command(flatten)]
        flags: SshkeyFlags,
    },
    /// What each agent says about itself (name, OS, version, addresses, tags).
    #[command(after_help = "Examples:\n  mig agentinfo -t \"tags->>'team' = 'web'\"")]
    Agentinfo {
        #[command(flatten)]
        launch: LaunchFlags,
    },
    /// Launch an action file (signed here unless it already is); `mig -i FILE` too.
    Run {
        /// The action (JSON).
        action: PathBuf,
        #[command(flatten)]
        launch: LaunchFlags,
    },
    /// Show what an action brought back (from the history); with --follow,
    /// rejoin the mesh and collect what is still coming.
    Results {
        /// The action id, or an unambiguous prefix of it.
        action_id: String,
        #[arg(long)]
        follow: bool,
        #[arg(long, value_enum, default_value = "all")]
        show: Show,
    },
    /// Stop an action: agents still running it stop, the others never start.
    Cancel {
        /// The action id, or an unambiguous prefix of it.
        action_id: String,
    },
    /// Take a census of the agents (an agentinfo action) and keep the roster;
    /// --cached lists the roster without asking.
    Agents {
        /// Only agents this target selects (an expression or a macro).
        #[arg(short = 't', long = "target", value_name = "TARGET")]
        target: Option<String>,
        #[arg(long)]
        cached: bool,
    },
    /// The actions this console launched, newest first.
    History {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
    },
    /// One action from the history: its details and counters.
    Show {
        /// The action id, or an unambiguous prefix of it.
        action_id: String,
    },
    /// A mesh on this machine: a relay and agents with planted files, a
    /// census, an IOC sweep and a netstat query, then the shell.
    Demo {
        /// How many agents.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=200))]
        agents: u16,
        /// Do not open the shell at the end, even on a terminal.
        #[arg(long)]
        no_shell: bool,
    },
    /// The interactive shell (also what `mig` alone opens).
    Shell,
}

const FILE_EXAMPLES: &str = "Examples:
  mig file -t \"os = 'linux'\" -path /usr/bin -sha2 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
  mig file -path /etc -name '^passwd$' -content '^bob:' -show all
  mig file -path /var/www -content 'eval\\(base64_decode' -size '<1m' -mtime '<2d'
  mig file -path /tmp -mode '^-..x' -matchany -name '\\.sh$'
  mig file -t local -path /usr/bin -sha256 <hash> -returnsha256

Each filter is repeatable; with -matchall (the default) a file must pass all of them,
with -matchany any one. -mismatch FILTER inverts one (name, size, mode, mtime,
content, md5, sha1, sha2, sha3).";

const NETSTAT_EXAMPLES: &str = "Examples:
  mig netstat -lp 4444                      # who listens on TCP or UDP port 4444
  mig netstat -ci 203.0.113.7 -ci 198.51.100.0/24
  mig netstat -li 10.0.0.0/8 -nm '^00:16:3e'";

const PKG_EXAMPLES: &str = "Examples:
  mig pkg -name '^openssl$' -version '^1\\.0\\.1'
  mig pkg -name '^libssl' -name '^openssl'";

const PROCESS_EXAMPLES: &str = "Examples:
  mig process -name '^kworkerd$'
  mig process -cmdline 'nc -l' -user root
  mig process -exesha256 <hash>";

const SSHKEY_EXAMPLES: &str = "Examples:
  mig sshkey                                 # /root and /home
  mig sshkey -path /etc/ssh -maxdepth 2";

/// MIG's file flags; the command line builds one search, `s1`.
#[derive(Args, Debug, Clone, Default)]
pub struct FileFlags {
    /// Where to search (a path or a glob); repeatable, at least one.
    #[arg(long = "path", required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// A regex on the file name; `!regex` inverts.
    #[arg(long = "name", value_name = "REGEX", allow_hyphen_values = true)]
    pub names: Vec<String>,
    /// `<10m`, `>1g` or an exact size (k, m, g, t: powers of 1024).
    #[arg(long = "size", value_name = "SIZE", allow_hyphen_values = true)]
    pub sizes: Vec<String>,
    /// A regex on the mode as `ls` prints it (`^-rwx`).
    #[arg(long = "mode", value_name = "REGEX", allow_hyphen_values = true)]
    pub modes: Vec<String>,
    /// `<90d`, `>5h`, `<30m`: modified within or before.
    #[arg(long = "mtime", value_name = "AGE", allow_hyphen_values = true)]
    pub mtimes: Vec<String>,
    /// A regex matched line by line; `!regex` inverts.
    #[arg(long = "content", value_name = "REGEX", allow_hyphen_values = true)]
    pub contents: Vec<String>,
    #[arg(long, value_name = "HEX")]
    pub md5: Vec<String>,
    #[arg(long, value_name = "HEX")]
    pub sha1: Vec<String>,
    /// SHA-2: 256, 384 or 512 bits, by length.
    #[arg(long, value_name = "HEX")]
    pub sha2: Vec<String>,
    /// SHA-3: 224, 256, 384 or 512 bits, by length.
    #[arg(long, value_name = "HEX")]
    pub sha3: Vec<String>,
    #[arg(long, value_name = "HEX")]
    pub sha256: Vec<String>,
    #[arg(long, value_name = "HEX")]
    pub sha384: Vec<String>,
    #[arg(long, value_name = "HEX")]
    pub sha512: Vec<String>,
    /// Invert one filter (name, size, mode, mtime, content, md5, sha1, sha2, sha3).
    #[arg(long, value_name = "FILTER")]
    pub mismatch: Vec<String>,
    /// Directory levels to descend.
    #[arg(long, default_value_t = 1000)]
    pub maxdepth: u64,
    /// Walking errors reported at most.
    #[arg(long, default_value_t = 30)]
    pub maxerrors: u64,
    /// Matches reported at most.
    #[arg(long, default_value_t = 1000)]
    pub matchlimit: u64,
    /// A file must pass every filter (the default).
    #[arg(long, conflicts_with = "matchany")]
    pub matchall: bool,
    /// A file passing any one filter matches.
    #[arg(long)]
    pub matchany: bool,
    /// Match all content regexes on all lines.
    #[arg(long)]
    pub macroal: bool,
    /// Report each match's SHA-256.
    #[arg(long)]
    pub returnsha256: bool,
    /// Gunzip files before looking at contents and hashes.
    #[arg(long)]
    pub decompress: bool,
}

/// MIG's netstat flags; each repeatable.
#[derive(Args, Debug, Clone, Default)]
#[command(group = clap::ArgGroup::new("query").required(true).multiple(true))]
pub struct NetstatFlags {
    /// A regex on local interface MAC addresses.
    #[arg(long = "lm", value_name = "REGEX", group = "query")]
    pub localmac: Vec<String>,
    /// A regex on MAC addresses in the neighbour (ARP) table.
    #[arg(long = "nm", value_name = "REGEX", group = "query")]
    pub neighbormac: Vec<String>,
    /// A local IP or CIDR.
    #[arg(long = "li", value_name = "IP", group = "query")]
    pub localip: Vec<String>,
    /// An IP or CIDR in the neighbour table.
    #[arg(long = "ni", value_name = "IP", group = "query")]
    pub neighborip: Vec<String>,
    /// An IP or CIDR this host has a connection with.
    #[arg(long = "ci", value_name = "IP", group = "query")]
    pub connectedip: Vec<String>,
    /// A TCP or UDP port something listens on.
    #[arg(long = "lp", value_name = "PORT", group = "query")]
    pub listeningport: Vec<u16>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct PkgFlags {
    /// A regex on the package name; repeatable, at least one.
    #[arg(long = "name", required = true, value_name = "REGEX")]
    pub names: Vec<String>,
    /// A regex on the version; `!regex` inverts.
    #[arg(long, value_name = "REGEX", allow_hyphen_values = true)]
    pub version: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
#[command(group = clap::ArgGroup::new("query").required(true).multiple(true))]
pub struct ProcessFlags {
    /// A regex on the process name.
    #[arg(long = "name", value_name = "REGEX", group = "query")]
    pub names: Vec<String>,
    /// A regex on the command line.
    #[arg(
        long = "cmdline",
        value_name = "REGEX",
        group = "query",
        allow_hyphen_values = true
    )]
    pub cmdlines: Vec<String>,
    /// The SHA-256 of the executable.
    #[arg(long, value_name = "HEX", group = "query")]
    pub exesha256: Vec<String>,
    /// A user name or uid.
    #[arg(long = "user", value_name = "USER", group = "query")]
    pub users: Vec<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct SshkeyFlags {
    /// Where to look (default /root and /home); repeatable.
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// Directory levels to descend.
    #[arg(long)]
    pub maxdepth: Option<u64>,
}

impl Command {
    /// The module and its parameters, for the module commands.
    pub fn operation(&self) -> Option<(&LaunchFlags, mig_proto::Operation)> {
        let (launch, module, parameters) = match self {
            Self::File { launch, flags } => (launch, "file", flags.parameters()),
            Self::Netstat { launch, flags } => (launch, "netstat", flags.parameters()),
            Self::Pkg { launch, flags } => (launch, "pkg", flags.parameters()),
            Self::Process { launch, flags } => (launch, "process", flags.parameters()),
            Self::Sshkey { launch, flags } => (launch, "sshkey", flags.parameters()),
            Self::Agentinfo { launch } => (launch, "agentinfo", json!({})),
            _ => return None,
        };
        Some((
            launch,
            mig_proto::Operation {
                module: module.to_owned(),
                parameters,
            },
        ))
    }
}

/// Adds `key: values` to `object` unless `values` is empty.
fn put_list(object: &mut Map<String, Json>, key: &str, values: &[String]) {
    if !values.is_empty() {
        object.insert(key.to_owned(), json!(values));
    }
}

impl FileFlags {
    pub fn parameters(&self) -> Json {
        let mut search = Map::new();
        search.insert("paths".into(), json!(self.paths));
        for (key, values) in [
            ("names", &self.names),
            ("contents", &self.contents),
            ("sizes", &self.sizes),
            ("modes", &self.modes),
            ("mtimes", &self.mtimes),
            ("md5", &self.md5),
            ("sha1", &self.sha1),
            ("sha2", &self.sha2),
            ("sha3", &self.sha3),
            ("sha256", &self.sha256),
            ("sha384", &self.sha384),
            ("sha512", &self.sha512),
        ] {
            put_list(&mut search, key, values);
        }
        let mut options = Map::new();
        options.insert("maxdepth".into(), json!(self.maxdepth));
        options.insert("maxerrors".into(), json!(self.maxerrors));
        options.insert("matchlimit".into(), json!(self.matchlimit));
        // MIG's command line matched all filters unless told -matchany.
        options.insert("matchall".into(), json!(!self.matchany));
        options.insert("macroal".into(), json!(self.macroal));
        put_list(&mut options, "mismatch", &self.mismatch);
        if self.returnsha256 {
            options.insert("returnsha256".into(), json!(true));
        }
        if self.decompress {
            options.insert("decompress".into(), json!(true));
        }
        search.insert("options".into(), Json::Object(options));
        json!({ "searches": { "s1": search } })
    }
}

impl NetstatFlags {
    pub fn parameters(&self) -> Json {
        let mut parameters = Map::new();
        put_list(&mut parameters, "localmac", &self.localmac);
        put_list(&mut parameters, "neighbormac", &self.neighbormac);
        put_list(&mut parameters, "localip", &self.localip);
        put_list(&mut parameters, "neighborip", &self.neighborip);
        put_list(&mut parameters, "connectedip", &self.connectedip);
        if !self.listeningport.is_empty() {
            parameters.insert("listeningport".into(), json!(self.listeningport));
        }
        Json::Object(parameters)
    }
}

impl PkgFlags {
    pub fn parameters(&self) -> Json {
        let mut parameters = Map::new();
        parameters.insert("pkgmatch".into(), json!({ "matches": self.names }));
        if let Some(version) = &self.version {
            parameters.insert("vermatch".into(), json!(version));
        }
        Json::Object(parameters)
    }
}

impl ProcessFlags {
    pub fn parameters(&self) -> Json {
        let mut parameters = Map::new();
        put_list(&mut parameters, "names", &self.names);
        put_list(&mut parameters, "cmdlines", &self.cmdlines);
        put_list(&mut parameters, "exesha256", &self.exesha256);
        put_list(&mut parameters, "users", &self.users);
        Json::Object(parameters)
    }
}

impl SshkeyFlags {
    pub fn parameters(&self) -> Json {
        let mut parameters = Map::new();
        put_list(&mut parameters, "paths", &self.paths);
        if let Some(depth) = self.maxdepth {
            parameters.insert("maxdepth".into(), json!(depth));
        }
        Json::Object(parameters)
    }
}

pub fn parse_duration(text: &str) -> Result<i64, String> {
    mig_proto::time::parse_duration_seconds(text).map_err(|error| error.to_string())
}

/// Every long flag the parser knows (without dashes), and whether it
/// takes a value.
fn long_flags() -> BTreeMap<String, bool> {
    fn walk(command: &clap::Command, into: &mut BTreeMap<String, bool>) {
        for argument in command.get_arguments() {
            let takes_value = argument.get_action().takes_values();
            if let Some(long) = argument.get_long() {
                into.insert(long.to_owned(), takes_value);
            }
            if let Some(short) = argument.get_short() {
                into.insert(short.to_string(), takes_value);
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, into);
        }
    }
    let mut flags = BTreeMap::new();
    walk(&Cli::command(), &mut flags);
    flags.insert("help".into(), false);
    flags
}

/// MIG's spellings to clap's: `-path X` and `-path=X` become `--path`,
/// `mig -i FILE` becomes `mig run FILE`, `mig <module> help` asks for the
/// module's help. A word right after a flag that takes a value is that
/// value and is left alone (`-mode -rwx`). `arguments` excludes the
/// program name.
pub fn normalize(arguments: Vec<String>) -> Vec<String> {
    let known = long_flags();
    let mut out = Vec::with_capacity(arguments.len() + 1);
    let mut value_expected = false;
    for argument in arguments {
        if value_expected {
            value_expected = false;
            out.push(argument);
            continue;
        }
        // MIG's `mig -i FILE`: launch an action file.
        if argument == "-i" {
            out.push("run".to_owned());
            continue;
        }
        // `mig file help`: the module's help, not a stray argument.
        if argument == "help" && out.len() == 1 && out[0] != "run" {
            out.push("--help".to_owned());
            continue;
        }
        let rewritten = match argument.strip_prefix('-') {
            Some(rest) if !rest.is_empty() && !rest.starts_with('-') => {
                let (name, inline_value) = match rest.split_once('=') {
                    Some((name, _)) => (name, true),
                    None => (rest, false),
                };
                value_expected = !inline_value && known.get(name).copied().unwrap_or(false);
                if name.len() > 1 && name.starts_with(|first: char| first.is_ascii_alphabetic()) {
                    format!("-{argument}")
                } else {
                    argument
                }
            }
            Some(rest) if rest.starts_with('-') => {
                let name = rest[1..]
                    .split_once('=')
                    .map_or(&rest[1..], |(name, _)| name);
                value_expected = !rest.contains('=') && known.get(name).copied().unwrap_or(false);
                argument
            }
            _ => argument,
        };
        out.push(rewritten);
    }
    out
}

/// Parses a command line (without the program name) the way `mig` does.
pub fn parse(arguments: Vec<String>) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("mig".to_owned()).chain(normalize(arguments)))
}

/// The commands and flags, for the shell's completion.
pub fn command_names() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .filter(|command| !command.is_hide_set())
        .map(|command| command.get_name().to_owned())
        .collect()
}

/// The flags of one command (MIG's single-dash spellings), for completion.
pub fn flags_of(command_name: &str) -> Vec<String> {
    let cli = Cli::command();
    let mut flags: Vec<String> = cli
        .get_arguments()
        .filter_map(|argument| argument.get_long().map(|long| format!("--{long}")))
        .collect();
    if let Some(command) = cli.find_subcommand(command_name) {
        for argument in command.get_arguments() {
            if let Some(long) = argument.get_long() {
                flags.push(format!("-{long}"));
            }
            if let Some(short) = argument.get_short() {
                flags.push(format!("-{short}"));
            }
        }
    }
    flags.sort();
    flags.dedup();
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        shlex::split(line).unwrap()
    }

    fn operation(line: &str) -> (LaunchFlags, mig_proto::Operation) {
        let cli = parse(words(line)).unwrap_or_else(|error| panic!("{line}: {error}"));
        let command = cli.command.unwrap();
        let (launch, operation) = command.operation().unwrap();
        (launch.clone(), operation)
    }

    #[test]
    fn the_debug_assertions_of_clap_hold() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_registered_module_has_a_command_and_every_module_command_a_module() {
        let commands = command_names();
        for module in mig_node::modules::names() {
            assert!(
                commands.contains(&module.to_owned()),
                "no command for {module}"
            );
        }
        for command in ["file", "netstat", "pkg", "process", "sshkey", "agentinfo"] {
            assert!(mig_node::modules::lookup(command).is_some(), "{command}");
        }
    }

    #[test]
    fn file_flags_in_migs_spelling_build_migs_search() {
        let (launch, operation) = operation(
            "file -t \"os = 'linux'\" -e 10m -path /usr/bin -path /sbin -name '^ls$' -name '!^x' \
             -size '<10m' -mode '^-rwx' -mtime '<2d' -content 'eval\\(' -md5 d41d8cd98f00b204e9800998ecf8427e \
             -sha2 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 -mismatch name \
             -maxdepth 3 -maxerrors 5 -matchlimit 10 -macroal -returnsha256 -decompress -show all",
        );
        assert_eq!(launch.target.as_deref(), Some("os = 'linux'"));
        assert_eq!(launch.expire, 600);
        assert_eq!(launch.show, Show::All);
        assert_eq!(operation.module, "file");
        let expected = json!({"searches": {"s1": {
            "paths": ["/usr/bin", "/sbin"],
            "names": ["^ls$", "!^x"],
            "contents": ["eval\\("],
            "sizes": ["<10m"],
            "modes": ["^-rwx"],
            "mtimes": ["<2d"],
            "md5": ["d41d8cd98f00b204e9800998ecf8427e"],
            "sha2": ["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
            "options": {"maxdepth": 3, "maxerrors": 5, "matchlimit": 10, "matchall": true,
                        "macroal": true, "mismatch": ["name"], "returnsha256": true, "decompress": true}
        }}});
        assert_eq!(operation.parameters, expected);
        mig_node::modules::check_operations(&[operation]).unwrap();
    }

    #[test]
    fn double_dashes_and_equals_work_too_and_matchany_turns_matchall_off() {
        let (_, single) = operation("file -path=/etc -name=passwd -matchany");
        let (_, double) = operation("file --path /etc --name passwd --matchany");
        assert_eq!(single.parameters, double.parameters);
        assert_eq!(
            single.parameters["searches"]["s1"]["options"]["matchall"],
            json!(false)
        );
        // MIG's defaults.
        let options = &single.parameters["searches"]["s1"]["options"];
        assert_eq!(
            (
                &options["maxdepth"],
                &options["maxerrors"],
                &options["matchlimit"]
            ),
            (&json!(1000), &json!(30), &json!(1000))
        );
    }

    #[test]
    fn netstat_pkg_process_and_sshkey_flags() {
        let (_, netstat) = operation(
            "netstat -lm '^00:16' -nm aa -li 10.0.0.0/8 -ni 10.1.1.1 -ci 1.2.3.4 -lp 4444 -lp 22",
        );
        assert_eq!(
            netstat.parameters,
            json!({"localmac": ["^00:16"], "neighbormac": ["aa"], "localip": ["10.0.0.0/8"],
                   "neighborip": ["10.1.1.1"], "connectedip": ["1.2.3.4"], "listeningport": [4444, 22]})
        );
        let (_, pkg) = operation("pkg -name '^openssl$' -version '^1\\.0'");
        assert_eq!(
            pkg.parameters,
            json!({"pkgmatch": {"matches": ["^openssl$"]}, "vermatch": "^1\\.0"})
        );
        let (_, process) = operation("process -name kworkerd -cmdline '-l' -user root");
        assert_eq!(
            process.parameters,
            json!({"names": ["kworkerd"], "cmdlines": ["-l"], "users": ["root"]})
        );
        let (_, sshkey) = operation("sshkey -path /etc/ssh -maxdepth 2");
        assert_eq!(
            sshkey.parameters,
            json!({"paths": ["/etc/ssh"], "maxdepth": 2})
        );
        mig_node::modules::check_operations(&[netstat, pkg, process, sshkey]).unwrap();
    }

    #[test]
    fn mistakes_are_refused_with_the_flag_named() {
        for (line, mentions) in [
            ("file -name x", "--path"),
            ("netstat", "--lm"),
            ("netstat -lp 70000", "70000"),
            ("pkg", "--name"),
            ("file -path /x -maxdepth deep", "deep"),
            ("file -path /x -e forever", "forever"),
            ("file -path /x -show some", "some"),
            ("file -path /x -bogus", "-bogus"),
        ] {
            let error = parse(words(line)).unwrap_err().to_string();
            assert!(error.contains(mentions), "{line}: {error}");
        }
    }

    #[test]
    fn module_help_and_mig_dash_i() {
        let error = parse(words("file help")).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::DisplayHelp);
        let help = error.to_string();
        assert!(
            help.contains("--sha2") && help.contains("Examples"),
            "{help}"
        );
        let cli = parse(words("-i action.json -e 1h")).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Run { ref action, ref launch })
            if action == &PathBuf::from("action.json") && launch.expire == 3600)
        );
    }

    #[test]
    fn global_options_go_anywhere_and_values_that_look_like_flags_stay_values() {
        let cli = parse(words(
            "file -path /tmp -mode -rwx --format csv -target-found abc --bootstrap /ip4/1.2.3.4/tcp/1",
        ))
        .unwrap();
        assert_eq!(cli.global.format, Some(Format::Csv));
        assert_eq!(cli.global.bootstrap, ["/ip4/1.2.3.4/tcp/1"]);
        let command = cli.command.unwrap();
        let (launch, operation) = command.operation().unwrap();
        assert_eq!(launch.target_found.as_deref(), Some("abc"));
        assert_eq!(
            operation.parameters["searches"]["s1"]["modes"],
            json!(["-rwx"])
        );
    }
}
