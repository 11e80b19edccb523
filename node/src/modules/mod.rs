//! The modules, behind one registry, and what every module is given.
//!
//! A module is synchronous code that answers one question about the host
//! and returns MIG's result envelope; it never returns raw file contents.
//! The runtime (`crate::runtime`) runs it on its own low-priority thread
//! with a deadline; a module checks [`Cancellation::check`] often enough
//! to stop promptly when the action is cancelled or times out.

pub mod agentinfo;
pub mod file;
pub mod netstat;
pub mod pkg;
pub mod process;
mod procfs;
pub mod sshkey;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use mig_proto::modules::canonical_module_name;
use mig_proto::{AgentAttributes, ModuleResult};
use serde_json::Value as Json;

use crate::store::Store;

/// What a module may fail with. Any of these makes the operation `failed`
/// (or `timeout`/`cancelled`), never a dead agent.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("invalid parameters: {0}")]
    InvalidParameters(String),
    #[error("stopped: the action was cancelled")]
    Cancelled,
    #[error("stopped: the operation ran out of time")]
    TimedOut,
    #[error("{0}")]
    Failed(String),
}

/// Shared stop signal plus deadline for one operation.
#[derive(Debug, Clone)]
pub struct Cancellation {
    cancelled: Arc<AtomicBool>,
    deadline: Instant,
}

impl Cancellation {
    pub fn new(deadline: Instant) -> Self {
        Self {
            cancelled: Arc::new(AtomicBool::new(false)),
            deadline,
        }
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// `Err` once cancelled or past the deadline.
    pub fn check(&self) -> Result<(), ModuleError> {
        if self.cancelled.load(Ordering::Relaxed) {
            Err(ModuleError::Cancelled)
        } else if Instant::now() >= self.deadline {
            Err(ModuleError::TimedOut)
        } else {
            Ok(())
        }
    }
}

/// Everything a module run is given.
#[derive(Clone)]
pub struct ModuleContext {
    /// Filesystem modules look under this prefix (`/` normally; a mounted
    /// disk image or a test tree otherwise) and report paths as seen from
    /// it.
    pub root: PathBuf,
    pub cancellation: Cancellation,
    /// The agent's store (the file-hash cache), if it has one.
    pub store: Option<Arc<Store>>,
    pub attributes: Arc<AgentAttributes>,
    /// The pool modules use for parallel work (threads at low priority).
    pub pool: Arc<rayon::ThreadPool>,
    /// When the agent started, for `agentinfo`'s uptime.
    pub agent_started: SystemTime,
    /// The time the module run started, for relative time filters.
    pub now: SystemTime,
}

impl ModuleContext {
    /// The host path for a path as seen from the root.
    pub fn host_path(&self, logical: &Path) -> PathBuf {
        under_root(&self.root, logical)
    }

    /// The path as seen from the root for a host path under it.
    pub fn logical_path(&self, host: &Path) -> PathBuf {
        logical_under_root(&self.root, host)
    }
}

pub(crate) fn under_root(root: &Path, logical: &Path) -> PathBuf {
    let relative = logical.strip_prefix("/").unwrap_or(logical);
    if relative.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(relative)
    }
}

pub(crate) fn logical_under_root(root: &Path, host: &Path) -> PathBuf {
    match host.strip_prefix(root) {
        Ok(relative) => Path::new("/").join(relative),
        Err(_) => host.to_path_buf(),
    }
}

/// One module.
pub trait Module: Send + Sync {
    fn name(&self) -> &'static str;

    /// How long one run may take at most (MIG's `moduletimeout`).
    fn timeout(&self) -> Duration {
        Duration::from_secs(300)
    }

    /// Checks `parameters` without touching the host: the checks `run`
    /// starts with. Agents and relays refuse, before anything runs or
    /// spreads, an action with an operation that fails this.
    fn check(&self, parameters: &Json) -> Result<(), ModuleError>;

    /// Answers the question `parameters` asks.
    fn run(&self, parameters: &Json, context: &ModuleContext) -> Result<ModuleResult, ModuleError>;

    /// MIG's printer: one line per finding; with `found_only` false, also
    /// what was not found, statistics and errors.
    fn print(&self, result: &ModuleResult, found_only: bool) -> Vec<String>;
}

/// Every registered module. A module that is not finished is not listed.
pub fn registry() -> &'static [&'static dyn Module] {
    &[
        &agentinfo::AgentInfo,
        &file::FileModule,
        &netstat::Netstat,
        &pkg::Pkg,
        &process::Process,
        &sshkey::SshKey,
    ]
}

/// The module an operation names (legacy names included).
pub fn lookup(name: &str) -> Option<&'static dyn Module> {
    let canonical = canonical_module_name(name);
    registry()
        .iter()
        .copied()
        .find(|module| module.name() == canonical)
}

/// The names of the registered modules.
pub fn names() -> Vec<&'static str> {
    registry().iter().map(|module| module.name()).collect()
}

/// Why an action's operations cannot run on this agent.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("operation {index}: no module '{module}' on this agent")]
    UnknownModule { index: usize, module: String },
    #[error("operation {index} ({module}): {error}")]
    InvalidParameters {
        index: usize,
        module: &'static str,
        error: ModuleError,
    },
}

impl OperationError {
    /// Stable name for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownModule { .. } => "unknown_module",
            Self::InvalidParameters { .. } => "invalid_parameters",
        }
    }
}

/// Checks that every operation names a registered module and gives it
/// parameters it accepts, without running anything.
pub fn check_operations(operations: &[mig_proto::Operation]) -> Result<(), OperationError> {
    for (index, operation) in operations.iter().enumerate() {
        let module = lookup(&operation.module).ok_or_else(|| OperationError::UnknownModule {
            index,
            module: operation.module.clone(),
        })?;
        module
            .check(&operation.parameters)
            .map_err(|error| OperationError::InvalidParameters {
                index,
                module: module.name(),
                error,
            })?;
    }
    Ok(())
}

/// Parses a module's parameters, naming the field that is wrong.
pub(crate) fn parse_parameters<T: serde::de::DeserializeOwned>(
    parameters: &Json,
) -> Result<T, ModuleError> {
    // Deserialized from the borrowed value: `from_value` would take a deep
    // copy of the parameters first.
    T::deserialize(parameters).map_err(|error| ModuleError::InvalidParameters(error.to_string()))
}

/// A duration the way Go prints one, as MIG's statistics did (`2.017849ms`).
pub fn go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    let trimmed = |whole: u128, fraction: u128, digits: usize, unit: &str| {
        let fraction = format!("{fraction:0digits$}");
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() {
            format!("{whole}{unit}")
        } else {
            format!("{whole}.{fraction}{unit}")
        }
    };
    if nanos < 1_000 {
        format!("{nanos}ns")
    } else if nanos < 1_000_000 {
        trimmed(nanos / 1_000, nanos % 1_000, 3, "µs")
    } else if nanos < 1_000_000_000 {
        trimmed(nanos / 1_000_000, nanos % 1_000_000, 6, "ms")
    } else {
        let seconds = nanos / 1_000_000_000;
        let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
        let mut text = String::new();
        if hours > 0 {
            text.push_str(&format!("{hours}h"));
        }
        if hours > 0 || minutes > 0 {
            text.push_str(&format!("{minutes}m"));
        }
        text + &trimmed(seconds, nanos % 1_000_000_000, 9, "s")
    }
}

/// What module tests share: a context over a test tree, and a way to plant
/// files in it.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    use mig_proto::AgentAttributes;

    use super::{Cancellation, ModuleContext};
    use crate::store::Store;

    /// A context rooted at `root`, a minute to run, the given attributes.
    pub(crate) fn context_with(
        root: &Path,
        store: Option<Arc<Store>>,
        attributes: AgentAttributes,
    ) -> ModuleContext {
        ModuleContext {
            root: root.to_path_buf(),
            cancellation: Cancellation::new(Instant::now() + Duration::from_secs(60)),
            store,
            attributes: Arc::new(attributes),
            pool: Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(2)
                    .build()
                    .expect("a thread pool"),
            ),
            agent_started: SystemTime::now(),
            now: SystemTime::now(),
        }
    }

    pub(crate) fn context(root: &Path) -> ModuleContext {
        context_with(root, None, AgentAttributes::default())
    }

    /// Writes `contents` at `path` (as seen from `root`), making directories.
    pub(crate) fn plant(root: &Path, path: &str, contents: impl AsRef<[u8]>) {
        let full = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(full.parent().expect("a parent")).expect("directories");
        std::fs::write(full, contents).expect("a file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn operation(module: &str, parameters: Json) -> mig_proto::Operation {
        mig_proto::Operation {
            module: module.into(),
            parameters,
        }
    }

    #[test]
    fn operations_are_checked_without_running() {
        let seed: mig_proto::Action = mig_proto::Action::from_json(include_str!(
            "../../../docs/examples/linux-backdoor-2014.json"
        ))
        .unwrap();
        check_operations(&seed.operations).unwrap();
        check_operations(&[operation("netstat", json!({"listeningport": [4444]}))]).unwrap();

        let refused = [
            (operation("memory", json!({})), "unknown_module"),
            (
                operation("file", json!({"searches": 5})),
                "invalid_parameters",
            ),
            (
                operation(
                    "file",
                    json!({"searches": {"s1": {"paths": ["/"], "names": ["(a"]}}}),
                ),
                "invalid_parameters",
            ),
            (
                operation("netstat", json!({"localip": ["not an ip"]})),
                "invalid_parameters",
            ),
            (
                operation("netstat", json!({"listeningport": [70000]})),
                "invalid_parameters",
            ),
            (operation("netstat", json!({})), "invalid_parameters"),
            (
                operation("pkg", json!({"pkgmatch": {"matches": ["("]}})),
                "invalid_parameters",
            ),
            (
                operation("process", json!({"exesha256": ["xyz"]})),
                "invalid_parameters",
            ),
            (
                operation("sshkey", json!({"paths": ["relative"]})),
                "invalid_parameters",
            ),
            (
                operation("agentinfo", json!({"surprise": true})),
                "invalid_parameters",
            ),
        ];
        for (operation, kind) in refused {
            let error = check_operations(std::slice::from_ref(&operation)).unwrap_err();
            assert_eq!(error.kind(), kind, "{operation:?}: {error}");
        }
        // The second operation is the bad one, and the error says so.
        let error = check_operations(&[
            operation("agentinfo", Json::Null),
            operation("file", json!({"searches": {"s1": {"paths": 1}}})),
        ])
        .unwrap_err();
        assert!(
            error.to_string().starts_with("operation 1 (file)"),
            "{error}"
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_nanos(2_017_849)), "2.017849ms");
        assert_eq!(go_duration(Duration::from_nanos(850)), "850ns");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_millis(3029)), "3.029s");
        assert_eq!(go_duration(Duration::from_secs(3725)), "1h2m5s");
    }

    #[test]
    fn legacy_names_find_their_module() {
        assert_eq!(lookup("filechecker").unwrap().name(), "file");
        assert!(lookup("memory").is_none());
    }

    #[test]
    fn paths_under_a_root() {
        let root = Path::new("/mnt/image");
        assert_eq!(
            under_root(root, Path::new("/usr/bin")),
            Path::new("/mnt/image/usr/bin")
        );
        assert_eq!(under_root(root, Path::new("/")), Path::new("/mnt/image"));
        assert_eq!(
            logical_under_root(root, Path::new("/mnt/image/etc/passwd")),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            under_root(Path::new("/"), Path::new("/etc")),
            Path::new("/etc")
        );
    }
}
