//! `mig-node`: the agent and the relay (the command line is `cli.rs`).

fn main() -> std::process::ExitCode {
    mig_node::cli::main_with(std::env::args_os())
}
