//! The interactive shell: `mig` with no arguments.
//!
//! Every line goes through the command line's own parser ([`args::parse`])
//! and executor ([`Session`]), so `file -path /usr/bin -sha2 ...` in the
//! shell is `mig file -path /usr/bin -sha2 ...`. On top: history across
//! sessions (in the data directory), tab completion of commands, modules,
//! flags and action ids, the dashboard it opens with, and MIG console's
//! action builder (`create action`, `addoperation`, `settarget`,
//! `settimes`, `sign`, `launch`).

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};

use crate::args::{self, Command, GlobalFlags, LaunchFlags};
use crate::roster::{self, Roster};
use crate::session::{self, Session, Settings};
use mig_proto::{Action, Target, Timestamp};

/// Lines kept in the shell's history file.
const HISTORY_LINES: usize = 10_000;

/// Words the shell knows besides the commands.
const SHELL_WORDS: &[&str] = &["create", "exit", "help", "quit", "status"];
/// The action builder's words.
const BUILDER_WORDS: &[&str] = &[
    "addoperation",
    "deloperation",
    "details",
    "done",
    "json",
    "launch",
    "load",
    "setname",
    "settarget",
    "settimes",
    "sign",
];

/// What completion needs to know, refreshed after every command.
#[derive(Default)]
struct Known {
    action_ids: Vec<String>,
    building: bool,
}

struct MigHelper {
    known: Arc<Mutex<Known>>,
}

impl MigHelper {
    fn candidates(&self, words: &[&str], current: &str) -> Vec<String> {
        let known = self
            .known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut all: Vec<String> = match words {
            [] => {
                let mut names = args::command_names();
                names.extend(SHELL_WORDS.iter().map(|word| (*word).to_owned()));
                if known.building {
                    names.extend(BUILDER_WORDS.iter().map(|word| (*word).to_owned()));
                }
                names
            }
            ["create"] => vec!["action".into()],
            ["addoperation"] => mig_node::modules::names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            [.., previous]
                if matches!(
                    *previous,
                    "-target-found" | "--target-found" | "-target-notfound" | "--target-notfound"
                ) || (words.len() == 1 && matches!(words[0], "results" | "show" | "cancel")) =>
            {
                known.action_ids.clone()
            }
            [first, ..] if current.starts_with('-') => {
                let command = if *first == "addoperation" {
                    words.get(1).copied().unwrap_or("")
                } else {
                    first
                };
                args::flags_of(command)
            }
            _ => Vec::new(),
        };
        all.retain(|candidate| candidate.starts_with(current));
        all.sort();
        all.dedup();
        all
    }
}

impl Completer for MigHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .rfind(char::is_whitespace)
            .map_or(0, |index| index + 1);
        let current = &before[start..];
        let words: Vec<&str> = before[..start].split_whitespace().collect();
        let pairs = self
            .candidates(&words, current)
            .into_iter()
            .map(|candidate| Pair {
                display: candidate.clone(),
                replacement: format!("{candidate} "),
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for MigHelper {
    type Hint = String;
}
impl Highlighter for MigHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}
impl Validator for MigHelper {}
impl Helper for MigHelper {}

/// The action being built (`create action` ... `launch`).
struct Builder {
    action: Action,
    expire: i64,
}

/// Runs the shell until `exit` or end of input.
pub fn run(base: GlobalFlags) -> anyhow::Result<u8> {
    let mut session = Session::new(base.clone())?;
    let settings = session.settings(&GlobalFlags::default())?;
    let known = Arc::new(Mutex::new(Known::default()));
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .max_history_size(HISTORY_LINES)?
        .auto_add_history(false)
        .build();
    let mut editor: Editor<MigHelper, DefaultHistory> = Editor::with_config(config)?;
    editor.set_helper(Some(MigHelper {
        known: known.clone(),
    }));
    let history_file = settings.data_dir.join("shell_history");
    let _ = std::fs::create_dir_all(&settings.data_dir);
    let _ = editor.load_history(&history_file);

    println!(
        "MIG mesh console {} - `help` lists the commands, Tab completes, Ctrl-D leaves",
        env!("CARGO_PKG_VERSION")
    );
    print_dashboard(&settings);
    refresh(&known, &settings, false);
    let mut builder: Option<Builder> = None;
    loop {
        let prompt = if builder.is_some() {
            "launcher> "
        } else {
            "mig> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(error) => return Err(error.into()),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        let _ = editor.save_history(&history_file);
        let Some(words) = shlex::split(line) else {
            eprintln!("unbalanced quotes");
            continue;
        };
        match run_line(&mut session, &mut builder, &words) {
            Ok(Flow::Exit) => break,
            Ok(Flow::Continue) => {}
            Err(error) => eprintln!("error: {error:#}"),
        }
        let settings = session.settings(&GlobalFlags::default())?;
        refresh(&known, &settings, builder.is_some());
    }
    Ok(0)
}

enum Flow {
    Continue,
    Exit,
}

fn run_line(
    session: &mut Session,
    builder: &mut Option<Builder>,
    words: &[String],
) -> anyhow::Result<Flow> {
    let first = words[0].as_str();
    let rest = &words[1..];
    let settings = || session.settings(&GlobalFlags::default());
    match first {
        "exit" | "quit" if builder.is_none() => return Ok(Flow::Exit),
        "exit" | "quit" | "done" if builder.is_some() => {
            *builder = None;
            println!("left the action builder; nothing was launched");
        }
        "help" => print_help(builder.is_some()),
        "status" => print_dashboard(&settings()?),
        "create" => {
            if rest.first().map(String::as_str) != Some("action") {
                bail!("create what? `create action`");
            }
            *builder = Some(Builder {
                action: session::new_action(Some(String::new()), Vec::new()),
                expire: 300,
            });
            println!(
                "building an action: addoperation, setname, settarget, settimes, details, json, sign, launch (done leaves)"
            );
        }
        word if BUILDER_WORDS.contains(&word) => {
            let Some(building) = builder.as_mut() else {
                bail!("`{word}` builds an action: start with `create action`");
            };
            if builder_command(session, building, word, rest)? {
                *builder = None;
            }
        }
        _ => {
            let cli = match args::parse(words.to_vec()) {
                Ok(cli) => cli,
                Err(error) => {
                    let _ = error.print();
                    return Ok(Flow::Continue);
                }
            };
            if matches!(
                cli.command,
                Some(Command::Shell | Command::Demo { .. }) | None
            ) {
                bail!("already in the shell");
            }
            let code = session.execute(cli)?;
            if code != 0 {
                eprintln!("(exit code {code})");
            }
        }
    }
    Ok(Flow::Continue)
}

/// One builder command; true when the action was launched (the builder
/// is done).
fn builder_command(
    session: &mut Session,
    building: &mut Builder,
    word: &str,
    rest: &[String],
) -> anyhow::Result<bool> {
    let settings = session.settings(&GlobalFlags::default())?;
    let unsign = |action: &mut Action| {
        if !action.signatures.is_empty() {
            action.signatures.clear();
            println!("(the signatures no longer held and were dropped)");
        }
    };
    match word {
        "addoperation" => {
            let cli = args::parse(rest.to_vec()).map_err(|error| anyhow::anyhow!("{error}"))?;
            let Some((_, operation)) = cli.command.as_ref().and_then(Command::operation) else {
                bail!(
                    "addoperation MODULE [flags], e.g. addoperation file -path /etc -name passwd"
                );
            };
            mig_node::modules::check_operations(std::slice::from_ref(&operation))?;
            unsign(&mut building.action);
            building.action.operations.push(operation);
            println!("operation {} added", building.action.operations.len());
        }
        "deloperation" => {
            let index: usize = rest
                .first()
                .context("deloperation N")?
                .parse()
                .context("deloperation N")?;
            if index == 0 || index > building.action.operations.len() {
                bail!("there are {} operations", building.action.operations.len());
            }
            unsign(&mut building.action);
            building.action.operations.remove(index - 1);
        }
        "setname" => {
            unsign(&mut building.action);
            building.action.name = rest.join(" ");
        }
        "settarget" => {
            let text = rest.join(" ");
            let target = if settings.macros.contains_key(&text) {
                settings.macros[&text].clone()
            } else {
                text
            };
            let parsed = Target::parse(&target).map_err(|error| anyhow::anyhow!("{error}"))?;
            unsign(&mut building.action);
            building.action.target = target;
            let entries = Roster::open(&settings.data_dir)
                .and_then(|roster| roster.all())
                .unwrap_or_default();
            let count = roster::select(
                &entries,
                &parsed,
                session::unix_now() - roster::FRESH_SECONDS,
            )
            .len();
            println!(
                "{count} agents will be targeted (of {} in the roster)",
                entries.len()
            );
        }
        "settimes" => {
            let [start, stop] = rest else {
                bail!(
                    "settimes START STOP: START is now or RFC 3339, STOP is +DURATION or RFC 3339"
                );
            };
            let now = Timestamp::from_system_time(SystemTime::now());
            let from = if start == "now" {
                now.plus_seconds(-60)
            } else {
                Timestamp::parse_rfc3339(start)?
            };
            let until = match stop.strip_prefix('+') {
                Some(duration) => {
                    from.plus_seconds(60 + mig_proto::time::parse_duration_seconds(duration)?)
                }
                None => Timestamp::parse_rfc3339(stop)?,
            };
            if until.unix_seconds() <= from.unix_seconds() {
                bail!("the action would expire before it is valid");
            }
            unsign(&mut building.action);
            building.action.validfrom = Some(from);
            building.action.expireafter = Some(until);
            building.expire = until.seconds_since(now);
        }
        "load" => {
            let path = PathBuf::from(rest.first().context("load FILE")?);
            building.action = mig_keys::load_action(&path)?;
        }
        "json" => println!("{}", building.action.to_json_pretty()),
        "details" => {
            let action = &building.action;
            println!("name     {}", action.name);
            println!("target   {}", action.target);
            for (index, operation) in action.operations.iter().enumerate() {
                println!(
                    "op {}     {} {}",
                    index + 1,
                    operation.module,
                    operation.parameters
                );
            }
            if let (Some(from), Some(until)) = (action.validfrom, action.expireafter) {
                println!("valid    {from} .. {until}");
            }
            println!("signed   {} time(s)", action.signatures.len());
        }
        "sign" => {
            check_complete(&building.action)?;
            let flags = LaunchFlags {
                expire: building.expire,
                sign_only: true,
                ..LaunchFlags::default()
            };
            let captured = SharedBuffer::default();
            let previous = std::mem::replace(&mut session.out, Box::new(captured.clone()));
            let signed = session.launch(building.action.clone(), &flags, &settings, true);
            session.out = previous;
            signed?;
            building.action = Action::from_json(std::str::from_utf8(&captured.take())?)?;
            println!("signed ({} signature(s))", building.action.signatures.len());
        }
        "launch" => {
            check_complete(&building.action)?;
            let flags = LaunchFlags {
                expire: building.expire,
                ..LaunchFlags::default()
            };
            let code = session.launch(building.action.clone(), &flags, &settings, true)?;
            if code != 0 {
                eprintln!("(exit code {code})");
            }
            return Ok(true);
        }
        _ => bail!("unknown builder command {word}"),
    }
    Ok(false)
}

fn check_complete(action: &Action) -> anyhow::Result<()> {
    if action.operations.is_empty() {
        bail!("no operations yet: addoperation MODULE [flags]");
    }
    if action.target.is_empty() {
        bail!("no target yet: settarget EXPRESSION (or a macro)");
    }
    if action.name.is_empty() {
        bail!("no name yet: setname NAME");
    }
    Ok(())
}

/// A writer whose bytes can be taken back.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn take(&self) -> Vec<u8> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

impl std::io::Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn refresh(known: &Arc<Mutex<Known>>, settings: &Settings, building: bool) {
    // After every line: the ids only, not the history's counters.
    let ids = mig_node::store::Store::open(&settings.data_dir)
        .and_then(|store| store.sent_ids())
        .map(|ids| {
            ids.iter()
                .filter_map(|id| id.get(..6))
                .map(hex::encode)
                .collect()
        })
        .unwrap_or_default();
    let mut known = known
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    known.action_ids = ids;
    known.building = building;
}

fn print_dashboard(settings: &Settings) {
    let now = session::unix_now();
    match Roster::open(&settings.data_dir).and_then(|roster| roster.all()) {
        Ok(entries) => print!("{}", roster::dashboard(&entries, now)),
        Err(error) => eprintln!("{error}"),
    }
    if let Ok(entries) = session::history_entries(settings, 5)
        && !entries.is_empty()
    {
        println!("latest actions:\n{}", session::history_table(&entries));
    }
}

fn print_help(building: bool) {
    println!(
        "commands (as on the command line, MIG's flags; `<command> --help` for details):\n\
         \x20 file, netstat, pkg, process, sshkey, agentinfo   launch a module, e.g. file -t linux -path /usr/bin -sha2 HASH\n\
         \x20 run FILE                                         launch an action file\n\
         \x20 results ID [--follow]   show ID   history   agents [-t T] [--cached]   cancel ID\n\
         \x20 status                                           the dashboard\n\
         \x20 create action                                    build an action step by step\n\
         \x20 exit                                             leave (Ctrl-D too)\n\
         Ctrl-C while following an action detaches; the agents go on."
    );
    if building {
        println!(
            "action builder:\n\
             \x20 addoperation MODULE [flags]   deloperation N   setname NAME   settarget TARGET\n\
             \x20 settimes now +10m             details          json           load FILE\n\
             \x20 sign                          launch           done (leave without launching)"
        );
    }
}
