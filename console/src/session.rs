//! Running one parsed command: the one-shot `mig ...` and every line of
//! the shell go through [`Session::execute`].
//!
//! A launch, as a person sees it: what will be sent and how many agents
//! the roster expects; a countdown that Ctrl-C cancels (on a terminal,
//! unless `--yes`); a progress bar with live counters that Ctrl-C detaches
//! from (the agents go on; `mig results ID --follow` re-attaches); then
//! the results and who did not answer.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use libp2p::Multiaddr;
use mig_keys::{PromptingPassphrase, SecretKey, load_secret_key};
use mig_node::mesh::reports::{Report, ReportBody};
use mig_proto::{Action, ActionId, Operation, Target, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::args::{Cli, Command, Format, GlobalFlags, LaunchFlags, Show};
use crate::config::{self, ConsoleConfig};
use crate::launch::{self, AgentOutcome, LaunchOptions, LaunchOutcome, Summary};
use crate::render;
use crate::roster::{self, Roster};

/// Exit code: cancelled before anything was published.
pub const EXIT_CANCELLED: u8 = 130;
/// How long the countdown before a launch lasts.
const COUNTDOWN_SECONDS: u64 = 5;
/// MIG's default target: every agent online (an agent evaluating it is).
const DEFAULT_TARGET: &str = "status = 'online'";

/// Everything a command needs to reach the mesh and print, resolved from
/// the configuration file and the flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub bootstrap: Vec<Multiaddr>,
    pub listen: Vec<Multiaddr>,
    pub psk: Option<[u8; 32]>,
    pub mdns: bool,
    pub key: Option<PathBuf>,
    pub passphrase_file: Option<PathBuf>,
    pub format: Format,
    pub timeout: Duration,
    pub yes: bool,
    pub macros: BTreeMap<String, String>,
}

impl GlobalFlags {
    /// `self` with what `later` sets put over it.
    pub fn overlay(&self, later: &GlobalFlags) -> GlobalFlags {
        let pick = |a: &Option<PathBuf>, b: &Option<PathBuf>| b.clone().or_else(|| a.clone());
        let list =
            |a: &Vec<String>, b: &Vec<String>| if b.is_empty() { a.clone() } else { b.clone() };
        GlobalFlags {
            config: pick(&self.config, &later.config),
            data_dir: pick(&self.data_dir, &later.data_dir),
            bootstrap: list(&self.bootstrap, &later.bootstrap),
            mdns: self.mdns || later.mdns,
            listen: list(&self.listen, &later.listen),
            psk: pick(&self.psk, &later.psk),
            key: pick(&self.key, &later.key),
            passphrase_file: pick(&self.passphrase_file, &later.passphrase_file),
            format: later.format.or(self.format),
            timeout: later.timeout.or(self.timeout),
            yes: self.yes || later.yes,
        }
    }
}

fn multiaddrs(what: &str, values: &[String]) -> anyhow::Result<Vec<Multiaddr>> {
    values
        .iter()
        .map(|value| {
            value
                .parse::<Multiaddr>()
                .with_context(|| format!("{what} '{value}' is not a multiaddr"))
        })
        .collect()
}

impl Settings {
    pub fn resolve(flags: &GlobalFlags) -> anyhow::Result<Self> {
        let (file, _) = config::load(flags.config.as_deref())?;
        Self::from_parts(&file, flags)
    }

    fn from_parts(file: &ConsoleConfig, flags: &GlobalFlags) -> anyhow::Result<Self> {
        let data_dir = match flags.data_dir.clone().or_else(|| file.data_dir.clone()) {
            Some(dir) => dir,
            None => {
                PathBuf::from(std::env::var_os("HOME").context("HOME is not set; give --data-dir")?)
                    .join(".mig")
            }
        };
        let bootstrap = if flags.bootstrap.is_empty() {
            &file.bootstrap
        } else {
            &flags.bootstrap
        };
        let listen = if !flags.listen.is_empty() {
            flags.listen.clone()
        } else if !file.listen.is_empty() {
            file.listen.clone()
        } else {
            vec!["/ip4/0.0.0.0/tcp/0".to_owned()]
        };
        let psk = flags.psk.clone().or_else(|| file.psk.clone());
        let format = match (flags.format, &file.format) {
            (Some(format), _) => format,
            (None, Some(name)) => <Format as clap::ValueEnum>::from_str(name, true)
                .map_err(|_| anyhow::anyhow!("format = '{name}' in the configuration: use text, table, json, ndjson or csv"))?,
            (None, None) => Format::Text,
        };
        let timeout = match (flags.timeout, &file.timeout) {
            (Some(seconds), _) => seconds,
            (None, Some(text)) => mig_proto::time::parse_duration_seconds(text)
                .with_context(|| format!("timeout = '{text}' in the configuration"))?,
            (None, None) => 30,
        };
        Ok(Self {
            data_dir,
            bootstrap: multiaddrs("bootstrap", bootstrap)?,
            listen: multiaddrs("listen", &listen)?,
            psk: psk.as_deref().map(mig_node::config::read_psk).transpose()?,
            mdns: flags.mdns || file.mdns.unwrap_or(false),
            key: flags.key.clone().or_else(|| file.key.clone()),
            passphrase_file: flags
                .passphrase_file
                .clone()
                .or_else(|| file.passphrase_file.clone()),
            format,
            timeout: Duration::from_secs(u64::try_from(timeout.max(1)).unwrap_or(30)),
            yes: flags.yes,
            macros: file.macros.clone(),
        })
    }

    /// The options a mesh command starts its console node with.
    fn mesh_options(&self) -> anyhow::Result<LaunchOptions> {
        if self.bootstrap.is_empty() && !self.mdns {
            bail!(config::first_run_help(
                "No way to reach the mesh: no bootstrap peer"
            ));
        }
        Ok(LaunchOptions {
            data_dir: self.data_dir.clone(),
            bootstrap: self.bootstrap.clone(),
            listen: self.listen.clone(),
            psk: self.psk,
            timeout: self.timeout,
            mdns: self.mdns,
            ..LaunchOptions::default()
        })
    }

    /// A target as typed: a macro's name, an expression, or nothing.
    fn expand_target(&self, given: Option<&str>) -> anyhow::Result<String> {
        let text = match given {
            None => DEFAULT_TARGET.to_owned(),
            Some(name) if self.macros.contains_key(name.trim()) => self.macros[name.trim()].clone(),
            Some(text) => text.to_owned(),
        };
        Target::parse(&text).map_err(|error| anyhow::anyhow!("the target: {error}"))?;
        Ok(text)
    }
}

/// A console session: the one-shot command or the shell's lifetime. It
/// keeps the investigator's key once unlocked, so the shell asks for the
/// passphrase once.
pub struct Session {
    pub base: GlobalFlags,
    runtime: tokio::runtime::Runtime,
    key: Option<(PathBuf, Arc<SecretKey>)>,
    /// Where results go (standard output; a buffer in tests).
    pub out: Box<dyn Write + Send>,
    /// The outcome the last command printed.
    pub last_outcome: Option<LaunchOutcome>,
}

impl Session {
    pub fn new(base: GlobalFlags) -> anyhow::Result<Self> {
        // The console is one node; two worker threads are plenty.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(Self {
            base,
            runtime,
            key: None,
            out: Box::new(std::io::stdout()),
            last_outcome: None,
        })
    }

    pub fn settings(&self, flags: &GlobalFlags) -> anyhow::Result<Settings> {
        Settings::resolve(&self.base.overlay(flags))
    }

    /// Runs one command; returns the exit code.
    pub fn execute(&mut self, cli: Cli) -> anyhow::Result<u8> {
        let settings = self.settings(&cli.global)?;
        let Some(command) = cli.command else {
            bail!("no command (the shell runs commands, it is not one)");
        };
        if let Some((launch, operation)) = command.operation() {
            let launch = launch.clone();
            let action = new_action(launch.name.clone(), vec![operation]);
            return self.launch(action, &launch, &settings, false);
        }
        match command {
            Command::Run { action, launch } => {
                if launch.target.is_some()
                    || launch.target_found.is_some()
                    || launch.target_notfound.is_some()
                {
                    bail!("an action file carries its own target; edit the file to change it");
                }
                let loaded = mig_keys::load_action(&action)?;
                self.launch(loaded, &launch, &settings, true)
            }
            Command::Results {
                action_id,
                follow,
                show,
            } => {
                let id = resolve_action_id(&settings, &action_id)?;
                let mut options = settings.mesh_options().or_else(|error| {
                    if follow {
                        Err(error)
                    } else {
                        Ok(LaunchOptions {
                            data_dir: settings.data_dir.clone(),
                            ..LaunchOptions::default()
                        })
                    }
                })?;
                let detach = CancellationToken::new();
                options.detach = Some(detach.clone());
                let outcome = self.runtime.block_on(async {
                    let watcher = tokio::spawn(detach_on_interrupt(detach));
                    let outcome = launch::results(id, follow, options).await;
                    watcher.abort();
                    outcome
                })?;
                self.remember_agents(&settings, &outcome);
                self.print(&outcome, settings.format, show)
            }
            Command::Cancel { action_id } => {
                let id = resolve_action_id(&settings, &action_id)?;
                let key = self.key(&settings)?;
                let options = settings.mesh_options()?;
                self.runtime.block_on(launch::cancel(id, &key, options))?;
                eprintln!("cancel for action {id} published");
                Ok(0)
            }
            Command::Agents { target, cached } => self.agents(&settings, target.as_deref(), cached),
            Command::History { limit } => self.history(&settings, limit),
            Command::Show { action_id } => self.show(&settings, &action_id),
            Command::Demo { .. } => bail!("`demo` is not available here"),
            Command::Shell => bail!("`shell` is not available here"),
            _ => unreachable!("module commands return above"),
        }
    }

    /// The investigator's key, unlocked once per session.
    fn key(&mut self, settings: &Settings) -> anyhow::Result<Arc<SecretKey>> {
        let Some(path) = settings.key.clone() else {
            bail!(config::first_run_help("No investigator key to sign with"));
        };
        if let Some((loaded, key)) = &self.key
            && loaded == &path
        {
            return Ok(key.clone());
        }
        let key = Arc::new(load_secret_key(
            &path,
            &PromptingPassphrase {
                file: settings.passphrase_file.clone(),
            },
        )?);
        self.key = Some((path, key.clone()));
        Ok(key)
    }

    /// Launches `action` (built from flags, or read from a file when
    /// `from_file`), follows it and prints what came back.
    pub fn launch(
        &mut self,
        mut action: Action,
        flags: &LaunchFlags,
        settings: &Settings,
        from_file: bool,
    ) -> anyhow::Result<u8> {
        if !from_file {
            if flags.target.as_deref().map(str::trim) == Some("local") {
                return self.run_locally(action, flags, settings);
            }
            action.target = settings.expand_target(flags.target.as_deref())?;
            if flags.target.is_none() {
                eprintln!("no target given (-t): every agent online is targeted");
            }
            action.target = narrow_by_history(&action.target, flags, settings)?;
        }
        if flags.print_only {
            writeln!(self.out, "{}", action.to_json_pretty())?;
            return Ok(0);
        }
        mig_node::modules::check_operations(&action.operations)?;
        let target = Target::parse(&action.target)
            .map_err(|error| anyhow::anyhow!("the target: {error}"))?;
        if flags.sign_only {
            return self.sign_only(action, flags, settings);
        }
        let mut options = settings.mesh_options()?;
        let key = if action.signatures.is_empty() {
            Some(self.key(settings)?)
        } else {
            None
        };

        // What the roster expects.
        let now = unix_now();
        let known = match Roster::open(&settings.data_dir).and_then(|roster| roster.all()) {
            Ok(entries) => entries,
            Err(error) => {
                eprintln!("warning: {error}; launching without an expected count");
                Vec::new()
            }
        };
        let expected: Vec<(String, String)> =
            roster::select(&known, &target, now - roster::FRESH_SECONDS)
                .into_iter()
                .map(|entry| (entry.peer.clone(), entry.attributes.name.clone()))
                .collect();
        let expected_count = (!known.is_empty()).then_some(expected.len());
        describe(&action, flags.expire, expected_count, known.len());

        if !settings.yes && std::io::stderr().is_terminal() && !countdown(&self.runtime)? {
            eprintln!("cancelled; nothing was sent");
            return Ok(EXIT_CANCELLED);
        }

        let bar = progress_bar(expected_count);
        let (progress, mut watch) = tokio::sync::watch::channel(Summary::default());
        let (tell_published, published) = std::sync::mpsc::channel::<ActionId>();
        let announcer = {
            let bar = bar.clone();
            std::thread::spawn(move || {
                if let Ok(id) = published.recv() {
                    let line = format!(
                        "action {id} published; stop it with: mig cancel {}",
                        id.short()
                    );
                    if bar.is_hidden() {
                        eprintln!("{line}");
                    } else {
                        bar.println(line);
                    }
                }
            })
        };
        let detach = CancellationToken::new();
        options.expiry_seconds = flags.expire;
        options.collect_for = Duration::from_secs(u64::try_from(flags.collect_for).unwrap_or(0));
        options.published = Some(tell_published);
        options.progress = Some(Arc::new(progress));
        options.detach = Some(detach.clone());
        options.expect_answers = expected_count.filter(|count| *count > 0);
        let outcome = self.runtime.block_on(async {
            let watcher = tokio::spawn(detach_on_interrupt(detach));
            let drawer = {
                let bar = bar.clone();
                tokio::spawn(async move {
                    while watch.changed().await.is_ok() {
                        let summary = watch.borrow_and_update().clone();
                        show_progress(&bar, &summary, expected_count);
                    }
                })
            };
            let outcome = launch::launch(action, key.as_deref(), options).await;
            watcher.abort();
            let _ = drawer.await;
            outcome
        });
        bar.finish_and_clear();
        let _ = announcer.join();
        let mut outcome = outcome?;
        let heard: BTreeSet<&str> = outcome
            .agents
            .iter()
            .map(|agent| agent.peer.as_str())
            .collect();
        outcome.expected = expected_count;
        outcome.unheard = expected
            .iter()
            .filter(|(peer, _)| !heard.contains(peer.as_str()))
            .map(|(_, name)| name.clone())
            .collect();
        self.remember_agents(settings, &outcome);
        if outcome.detached {
            eprintln!(
                "stopped following action {}, but agents may still be running; re-attach with: mig results {} --follow",
                outcome.action_id,
                outcome.action_id.short()
            );
        }
        self.print(&outcome, settings.format, flags.show)
    }

    /// MIG's `-s`: sign for this console and print, for a co-signer.
    fn sign_only(
        &mut self,
        mut action: Action,
        flags: &LaunchFlags,
        settings: &Settings,
    ) -> anyhow::Result<u8> {
        let key = self.key(settings)?;
        if action.signatures.is_empty() {
            let identity = mig_node::identity::load_or_create(&settings.data_dir)?;
            let seal = mig_proto::seal::SealSecret::generate()?;
            action.reply_to = Some(mig_proto::ReplyTo {
                peer_id: identity.public().to_peer_id().to_string(),
                addresses: Vec::new(),
                seal_key: Some(seal.public().to_string()),
            });
            mig_keys::fill_launch_defaults(
                &mut action,
                Timestamp::from_system_time(SystemTime::now()),
                flags.expire,
            )?;
            // Kept here, where the action will be launched from.
            let store = mig_node::store::Store::open(&settings.data_dir)?;
            store.keep_seal(&action.id()?.0, &seal.to_bytes())?;
        }
        mig_keys::sign_action(&mut action, &key)?;
        writeln!(self.out, "{}", action.to_json_pretty())?;
        eprintln!(
            "signed for this console; a co-signer runs `mig-keys sign --key THEIR.key FILE -o FILE`, then launch it here with `mig -i FILE`"
        );
        Ok(0)
    }

    /// `-t local`: the module runs on this host, no mesh, nothing signed.
    fn run_locally(
        &mut self,
        mut action: Action,
        flags: &LaunchFlags,
        settings: &Settings,
    ) -> anyhow::Result<u8> {
        use mig_node::runtime::{Runtime, RuntimeConfig};
        action.target = "true".into();
        mig_node::modules::check_operations(&action.operations)?;
        mig_keys::fill_launch_defaults(
            &mut action,
            Timestamp::from_system_time(SystemTime::now()),
            flags.expire,
        )?;
        let id = action.id()?;
        let attributes = mig_node::host::detect_attributes("local", Default::default());
        let runtime = Runtime::new(RuntimeConfig::default(), attributes.clone(), None)?;
        let cancel = CancellationToken::new();
        let started = std::time::Instant::now();
        let result = self.runtime.block_on(async {
            let on_interrupt = cancel.clone();
            let watcher = tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    on_interrupt.cancel();
                }
            });
            let result = runtime.run_action(id, &action, cancel).await;
            watcher.abort();
            result
        });
        let agents = vec![AgentOutcome {
            peer: "local".into(),
            attributes,
            acked: true,
            rejected: None,
            result: Some(result),
            ack_ms: Some(0),
            result_ms: Some(started.elapsed().as_millis()),
        }];
        let outcome = LaunchOutcome {
            action_id: id,
            action,
            summary: Summary::of(&agents),
            agents,
            elapsed_ms: started.elapsed().as_millis(),
            console_connections: 0,
            reports_dropped: BTreeMap::new(),
            graylisted_peers: Vec::new(),
            detached: false,
            expected: Some(1),
            unheard: Vec::new(),
        };
        self.print(&outcome, settings.format, flags.show)
    }

    fn print(&mut self, outcome: &LaunchOutcome, format: Format, show: Show) -> anyhow::Result<u8> {
        render::render(outcome, format, show, &mut self.out)?;
        self.out.flush()?;
        let summary = &outcome.summary;
        let mut counters = format!(
            "action {}: {} acked, {} answered, {} found, {} failed, {} refused, {} silent",
            outcome.action_id.short(),
            summary.acked,
            summary.answered,
            summary.found,
            summary.failed,
            summary.rejected,
            summary.silent,
        );
        if let Some(expected) = outcome.expected {
            counters.push_str(&format!(
                ", {} of {expected} expected never heard from",
                outcome.unheard.len()
            ));
        }
        eprintln!(
            "{counters} ({} ms from publish to last report)",
            outcome.elapsed_ms
        );
        if !outcome.reports_dropped.is_empty() {
            let reasons: Vec<String> = outcome
                .reports_dropped
                .iter()
                .map(|(reason, count)| format!("{count} {reason}"))
                .collect();
            eprintln!("reports refused: {}", reasons.join(", "));
        }
        for peer in &outcome.graylisted_peers {
            eprintln!("graylisted for misbehaving: {peer}");
        }
        let code = render::exit_code(outcome);
        self.last_outcome = Some(outcome.clone());
        Ok(code)
    }

    /// Keeps every agent heard from in the roster.
    fn remember_agents(&self, settings: &Settings, outcome: &LaunchOutcome) {
        let agents: Vec<(String, mig_proto::AgentAttributes)> = outcome
            .agents
            .iter()
            .filter(|agent| agent.peer != "local")
            .map(|agent| (agent.peer.clone(), agent.attributes.clone()))
            .collect();
        if agents.is_empty() {
            return;
        }
        let recorded =
            Roster::open(&settings.data_dir).and_then(|roster| roster.record(&agents, unix_now()));
        if let Err(error) = recorded {
            eprintln!("warning: {error}");
        }
    }

    /// `mig agents`: a census (unless `cached`), then the roster.
    fn agents(
        &mut self,
        settings: &Settings,
        target: Option<&str>,
        cached: bool,
    ) -> anyhow::Result<u8> {
        let filter = match target {
            Some(text) => Target::parse(&settings.expand_target(Some(text))?)?,
            None => Target::everyone(),
        };
        let mut code = 0;
        if !cached {
            let flags = LaunchFlags {
                target: Some(target.unwrap_or(DEFAULT_TARGET).to_owned()),
                expire: 120,
                name: Some("census".into()),
                ..LaunchFlags::default()
            };
            let action = new_action(
                flags.name.clone(),
                vec![Operation {
                    module: "agentinfo".into(),
                    parameters: serde_json::json!({}),
                }],
            );
            let quiet = Settings {
                yes: true,
                ..settings.clone()
            };
            // The census's own results are the roster; print it, not them.
            let out = std::mem::replace(&mut self.out, Box::new(std::io::sink()));
            let launched = self.launch(action, &flags, &quiet, false);
            self.out = out;
            code = launched?;
        }
        let roster = Roster::open(&settings.data_dir)?;
        let entries = roster.all()?;
        let selected = roster::select(&entries, &filter, i64::MIN);
        let now = unix_now();
        match settings.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut self.out, &selected)?;
                writeln!(self.out)?;
            }
            Format::Ndjson => {
                for entry in &selected {
                    serde_json::to_writer(&mut self.out, entry)?;
                    writeln!(self.out)?;
                }
            }
            Format::Csv => {
                let mut writer = csv::Writer::from_writer(&mut self.out);
                writer.write_record([
                    "name",
                    "peer",
                    "os",
                    "version",
                    "ident",
                    "tags",
                    "last_seen",
                ])?;
                for entry in &selected {
                    let attributes = &entry.attributes;
                    writer.write_record([
                        attributes.name.as_str(),
                        &entry.peer,
                        &attributes.os,
                        &attributes.version,
                        &attributes.env.ident,
                        &tags_text(&attributes.tags),
                        &entry.last_seen.to_string(),
                    ])?;
                }
                writer.flush()?;
            }
            Format::Text | Format::Table => {
                let mut table = comfy_table::Table::new();
                table
                    .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
                    .set_header(["name", "os", "version", "tags", "last seen", "peer"]);
                for entry in &selected {
                    let attributes = &entry.attributes;
                    // Every field but the time came from the agent.
                    let safe = |text: &str| render::printable(text).into_owned();
                    table.add_row([
                        safe(&attributes.name),
                        safe(&attributes.os),
                        safe(&attributes.version),
                        safe(&tags_text(&attributes.tags)),
                        ago(now - entry.last_seen),
                        safe(&entry.peer),
                    ]);
                }
                writeln!(self.out, "{table}")?;
                writeln!(self.out, "{} agents", selected.len())?;
            }
        }
        Ok(code)
    }

    /// `mig history`: the actions this console launched, newest first.
    fn history(&mut self, settings: &Settings, limit: usize) -> anyhow::Result<u8> {
        let entries = history_entries(settings, limit)?;
        match settings.format {
            Format::Json | Format::Ndjson => {
                for entry in &entries {
                    serde_json::to_writer(&mut self.out, entry)?;
                    writeln!(self.out)?;
                }
            }
            Format::Csv => {
                let mut writer = csv::Writer::from_writer(&mut self.out);
                writer.write_record([
                    "id", "name", "target", "modules", "launched", "acked", "answered", "found",
                ])?;
                for entry in &entries {
                    writer.write_record([
                        entry.id.as_str(),
                        &entry.name,
                        &entry.target,
                        &entry.modules.join(" "),
                        &entry.launched,
                        &entry.acked.to_string(),
                        &entry.answered.to_string(),
                        &entry.found.to_string(),
                    ])?;
                }
                writer.flush()?;
            }
            Format::Text | Format::Table => {
                writeln!(self.out, "{}", history_table(&entries))?;
            }
        }
        Ok(0)
    }

    /// `mig show ID`: one action from the history.
    fn show(&mut self, settings: &Settings, prefix: &str) -> anyhow::Result<u8> {
        let id = resolve_action_id(settings, prefix)?;
        let store = mig_node::store::Store::open(&settings.data_dir)?;
        let json = store
            .sent(&id.0)?
            .with_context(|| format!("this console has no record of action {id}"))?;
        let action = Action::from_json(&json)?;
        let counts = count_reports(&store, &id)?;
        writeln!(self.out, "action   {id}")?;
        writeln!(self.out, "name     {}", action.name)?;
        writeln!(self.out, "target   {}", action.target)?;
        let modules: Vec<&str> = action
            .operations
            .iter()
            .map(|operation| operation.module.as_str())
            .collect();
        writeln!(self.out, "modules  {}", modules.join(", "))?;
        if let (Some(from), Some(until)) = (action.validfrom, action.expireafter) {
            writeln!(self.out, "valid    {from} .. {until}")?;
        }
        let signers: Vec<String> = action
            .signatures
            .iter()
            .map(|signature| signature.fingerprint.to_string())
            .collect();
        writeln!(self.out, "signed   {}", signers.join(", "))?;
        writeln!(
            self.out,
            "answers  {} acked, {} refused, {} answered, {} found",
            counts.acked, counts.rejected, counts.answered, counts.found
        )?;
        writeln!(self.out, "\n{}", action.to_json_pretty())?;
        Ok(0)
    }
}

/// A new, unsigned action, with no target yet; named after its first
/// module unless given a name.
pub fn new_action(name: Option<String>, operations: Vec<Operation>) -> Action {
    let name = name.unwrap_or_else(|| {
        operations
            .first()
            .map(|operation| format!("{} query", operation.module))
            .unwrap_or_default()
    });
    Action {
        name,
        description: Default::default(),
        target: String::new(),
        threat: Default::default(),
        operations,
        syntaxversion: mig_proto::action::SYNTAX_VERSION,
        validfrom: None,
        expireafter: None,
        nonce: None,
        reply_to: None,
        signatures: Vec::new(),
    }
}

/// `-target-found ID` and `-target-notfound ID`: the agents' own memory of
/// an earlier action narrows the target.
fn narrow_by_history(
    target: &str,
    flags: &LaunchFlags,
    settings: &Settings,
) -> anyhow::Result<String> {
    if flags.target_found.is_none() && flags.target_notfound.is_none() {
        return Ok(target.to_owned());
    }
    let mut parts = Vec::new();
    if target.trim() != DEFAULT_TARGET {
        parts.push(format!("({target})"));
    }
    if let Some(prefix) = &flags.target_found {
        parts.push(format!("found('{}')", resolve_action_id(settings, prefix)?));
    }
    if let Some(prefix) = &flags.target_notfound {
        parts.push(format!(
            "notfound('{}')",
            resolve_action_id(settings, prefix)?
        ));
    }
    Ok(parts.join(" AND "))
}

/// A full action id, or a prefix of one in this console's history.
pub fn resolve_action_id(settings: &Settings, text: &str) -> anyhow::Result<ActionId> {
    let text = text.trim().to_ascii_lowercase();
    if let Ok(id) = text.parse::<ActionId>() {
        return Ok(id);
    }
    if text.len() < 4 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        bail!("'{text}' is not an action id (64 hex characters, or at least 4 of its first ones)");
    }
    let store = mig_node::store::Store::open(&settings.data_dir)?;
    let matching: Vec<String> = store
        .sent_ids()?
        .into_iter()
        .map(hex::encode)
        .filter(|id| id.starts_with(&text))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one.parse()?),
        [] => bail!("this console has no record of an action starting with {text}"),
        many => bail!("{text} is ambiguous: {}", many.join(", ")),
    }
}

/// What the console sent and heard, per action.
#[derive(Debug, serde::Serialize)]
pub struct HistoryEntry {
    pub id: String,
    pub name: String,
    pub target: String,
    pub modules: Vec<String>,
    pub launched: String,
    pub acked: usize,
    pub rejected: usize,
    pub answered: usize,
    pub found: usize,
}

#[derive(Default)]
struct Counts {
    acked: usize,
    rejected: usize,
    answered: usize,
    found: usize,
}

fn count_reports(store: &mig_node::store::Store, id: &ActionId) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    let mut acked = BTreeSet::new();
    for bytes in store.received(&id.0)? {
        let Ok(report) = ciborium::de::from_reader::<Report, _>(bytes.as_slice()) else {
            continue;
        };
        match report.body {
            ReportBody::Ack => {
                acked.insert(report.agent);
            }
            ReportBody::Rejected { .. } => counts.rejected += 1,
            ReportBody::Result(result) => {
                acked.insert(report.agent);
                counts.answered += 1;
                counts.found += usize::from(result.found_anything());
            }
        }
    }
    counts.acked = acked.len();
    Ok(counts)
}

pub fn history_entries(settings: &Settings, limit: usize) -> anyhow::Result<Vec<HistoryEntry>> {
    let store = mig_node::store::Store::open(&settings.data_dir)?;
    let mut actions: Vec<(ActionId, Action)> = store
        .sent_all()?
        .into_iter()
        .filter_map(|(id, json)| {
            let id = ActionId(id.try_into().ok()?);
            Some((id, Action::from_json(&json).ok()?))
        })
        .collect();
    actions.sort_by_key(|(_, action)| {
        std::cmp::Reverse(action.validfrom.map(Timestamp::unix_seconds))
    });
    actions.truncate(limit);
    actions
        .into_iter()
        .map(|(id, action)| {
            let counts = count_reports(&store, &id)?;
            Ok(HistoryEntry {
                id: id.to_string(),
                name: action.name,
                target: action.target,
                modules: action
                    .operations
                    .into_iter()
                    .map(|operation| operation.module)
                    .collect(),
                // Launch defaults backdate validfrom by a minute.
                launched: action
                    .validfrom
                    .map(|from| from.plus_seconds(60).to_string())
                    .unwrap_or_default(),
                acked: counts.acked,
                rejected: counts.rejected,
                answered: counts.answered,
                found: counts.found,
            })
        })
        .collect()
}

pub fn history_table(entries: &[HistoryEntry]) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header([
            "id", "name", "target", "modules", "launched", "acked", "answered", "found",
        ]);
    for entry in entries {
        table.add_row([
            entry.id[..12].to_owned(),
            entry.name.clone(),
            entry.target.clone(),
            entry.modules.join(" "),
            entry.launched.clone(),
            entry.acked.to_string(),
            entry.answered.to_string(),
            entry.found.to_string(),
        ]);
    }
    table.to_string()
}

fn tags_text(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ago(seconds: i64) -> String {
    match seconds {
        ..60 => "just now".into(),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..86_400 => format!("{} h ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

pub fn unix_now() -> i64 {
    Timestamp::from_system_time(SystemTime::now()).unix_seconds()
}

/// What is about to be sent, on standard error.
fn describe(action: &Action, expire: i64, expected: Option<usize>, roster_size: usize) {
    let modules: Vec<&str> = action
        .operations
        .iter()
        .map(|operation| operation.module.as_str())
        .collect();
    eprintln!("action   {}", action.name);
    eprintln!("target   {}", action.target);
    eprintln!("modules  {}", modules.join(", "));
    match (action.validfrom, action.expireafter) {
        (Some(from), Some(until)) => eprintln!("valid    {from} .. {until}"),
        _ => eprintln!(
            "valid    from now for {}",
            mig_proto::time::format_duration_seconds(expire)
        ),
    }
    match expected {
        Some(count) => eprintln!(
            "expected {count} agent{} (of {roster_size} in the roster heard from in the last day)",
            if count == 1 { "" } else { "s" }
        ),
        None => eprintln!("expected unknown: the roster is empty (`mig agents` takes a census)"),
    }
}

/// MIG's countdown; false if Ctrl-C cancelled it.
fn countdown(runtime: &tokio::runtime::Runtime) -> anyhow::Result<bool> {
    runtime.block_on(async {
        eprint!("ctrl+c to cancel. launching in");
        for second in (1..=COUNTDOWN_SECONDS).rev() {
            eprint!(" {second}");
            let _ = std::io::stderr().flush();
            tokio::select! {
                interrupted = tokio::signal::ctrl_c() => {
                    interrupted?;
                    eprintln!();
                    return Ok(false);
                }
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        eprintln!(" GO");
        Ok(true)
    })
}

/// Ctrl-C while collecting detaches.
async fn detach_on_interrupt(detach: CancellationToken) {
    if tokio::signal::ctrl_c().await.is_ok() {
        detach.cancel();
    }
}

fn progress_bar(expected: Option<usize>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(expected.unwrap_or(0) as u64),
        ProgressDrawTarget::stderr(),
    );
    let style = ProgressStyle::with_template(
        "{spinner} {elapsed:>3} [{bar:30}] {pos}/{len} answered  {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn show_progress(bar: &ProgressBar, summary: &Summary, expected: Option<usize>) {
    let length = expected
        .unwrap_or(0)
        .max(summary.acked)
        .max(summary.answered);
    bar.set_length(length as u64);
    bar.set_position(summary.answered as u64);
    bar.set_message(format!(
        "{} acked, {} found, {} failed ({} timed out), {} refused",
        summary.acked, summary.found, summary.failed, summary.timed_out, summary.rejected
    ));
}
