//! `mig-node`: the agent and the relay (the command line is `cli.rs`).

/// mimalloc rather than glibc's allocator: a node's work is many small,
/// short-lived buffers on several threads, where glibc's arenas spent a
/// sixth of a simulated fleet's CPU (docs/decisions/0009).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    mig_node::cli::main_with(std::env::args_os())
}
