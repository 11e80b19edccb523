//! `mig`: the investigator's console. `mig` alone opens the shell; `mig
//! <module> [flags]` launches one action the way MIG's `mig` did; `mig
//! demo` runs a mesh on this machine. See `mig --help` and `args.rs`.

/// The agent's allocator, as in `mig-node`'s `main.rs` (docs/decisions/0009).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use mig_console::args::{self, Command};
use mig_console::session::Session;
use mig_console::{demo, shell};

fn main() -> ExitCode {
    let arguments: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The demo's relay and agents are this binary too.
    if arguments
        .get(1)
        .is_some_and(|first| first == demo::NODE_COMMAND)
    {
        return mig_node::cli::main_with(
            std::iter::once(std::ffi::OsString::from("mig-node"))
                .chain(arguments[2..].iter().cloned()),
        );
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MIG_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut words = Vec::new();
    for argument in &arguments[1..] {
        match argument.to_str() {
            Some(word) => words.push(word.to_owned()),
            None => {
                eprintln!("mig: {argument:?} is not UTF-8");
                return ExitCode::from(2);
            }
        }
    }
    let cli = match args::parse(words) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    let outcome = match cli.command {
        None | Some(Command::Shell) => shell::run(cli.global),
        Some(Command::Demo { agents, no_shell }) => demo::run(cli.global, agents, no_shell),
        Some(_) => Session::new(Default::default()).and_then(|mut session| session.execute(cli)),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("mig: {error:#}");
            ExitCode::from(2)
        }
    }
}
