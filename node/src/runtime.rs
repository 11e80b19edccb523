//! Runs an action's operations through the modules.
//!
//! ```text
//! run_action ── permit (bounded actions) ── for each operation:
//!     spawn module thread (nice 19, lowest I/O priority, panics caught)
//!     wait for: its result | the deadline | the action's cancellation
//! ```
//!
//! Each operation's deadline is the smaller of the module's own timeout
//! and the action's expiry. On a timeout or a cancel the module's
//! `Cancellation` is set and the module stops at its next check; the agent
//! does not wait for it. A module that panics or errors makes its
//! operation `failed`, never a dead agent.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mig_proto::{
    Action, ActionId, AgentAttributes, AgentResult, AgentStatus, ModuleResult, Timestamp,
};
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use crate::modules::{self, Cancellation, ModuleContext, ModuleError};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Filesystem modules look under this prefix.
    pub root: PathBuf,
    /// Actions run at the same time at most; more wait their turn.
    pub max_concurrent_actions: usize,
    /// Threads for parallel module work (file hashing).
    pub worker_threads: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/"),
            max_concurrent_actions: 4,
            worker_threads: std::thread::available_parallelism().map_or(2, usize::from),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("root {0} is not a directory")]
    BadRoot(PathBuf),
    #[error("cannot start the module worker threads: {0}")]
    Pool(String),
}

/// The module runtime of one agent.
pub struct Runtime {
    root: PathBuf,
    store: Option<Arc<Store>>,
    attributes: Arc<AgentAttributes>,
    pool: Arc<rayon::ThreadPool>,
    slots: Arc<Semaphore>,
    started: SystemTime,
}

/// The outcome of one operation.
enum Outcome {
    Done(ModuleResult),
    Failed(String),
    TimedOut,
    Cancelled,
}

impl Runtime {
    pub fn new(
        config: RuntimeConfig,
        attributes: AgentAttributes,
        store: Option<Arc<Store>>,
    ) -> Result<Self, RuntimeError> {
        if !config.root.is_dir() {
            return Err(RuntimeError::BadRoot(config.root));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.worker_threads.max(1))
            .thread_name(|index| format!("mig-module-{index}"))
            .start_handler(|_| {
                let _ = crate::priority::lower_current_thread();
            })
            .build()
            .map_err(|error| RuntimeError::Pool(error.to_string()))?;
        Ok(Self {
            root: config.root,
            store,
            attributes: Arc::new(attributes),
            pool: Arc::new(pool),
            slots: Arc::new(Semaphore::new(config.max_concurrent_actions.max(1))),
            started: SystemTime::now(),
        })
    }

    pub fn attributes(&self) -> &AgentAttributes {
        &self.attributes
    }

    /// Runs every operation of `action` in order and returns the agent's
    /// result. `cancel` stops it where it is.
    pub async fn run_action(
        &self,
        action_id: ActionId,
        action: &Action,
        cancel: CancellationToken,
    ) -> AgentResult {
        let started_at = now_timestamp();
        let mut result = AgentResult {
            action_id,
            agent: (*self.attributes).clone(),
            status: AgentStatus::Success,
            reason: None,
            operations: Vec::new(),
            started_at,
            finished_at: started_at,
        };
        let permit = tokio::select! {
            permit = self.slots.clone().acquire_owned() => permit.ok(),
            () = cancel.cancelled() => None,
        };
        if permit.is_none() {
            result.status = AgentStatus::Cancelled;
            result.reason = Some("cancelled before it started".into());
        }
        for (index, operation) in action.operations.iter().enumerate() {
            if result.status == AgentStatus::Cancelled {
                result
                    .operations
                    .push(ModuleResult::failed("not run: the action was cancelled"));
                continue;
            }
            let remaining = action
                .expireafter
                .map(|expiry| expiry.seconds_since(now_timestamp()))
                .unwrap_or(i64::MAX);
            if remaining <= 0 {
                result
                    .operations
                    .push(ModuleResult::failed("not run: the action expired"));
                set_status(
                    &mut result,
                    AgentStatus::Expired,
                    format!(
                        "operation {index} ({}): the action expired",
                        operation.module
                    ),
                );
                continue;
            }
            let outcome = match modules::lookup(&operation.module) {
                None => Outcome::Failed(format!(
                    "unknown module '{}'; this agent has: {}",
                    operation.module,
                    modules::names().join(", ")
                )),
                Some(module) => {
                    let expiry = Duration::from_secs(
                        u64::try_from(remaining)
                            .unwrap_or(u64::MAX)
                            .min(u64::MAX / 4),
                    );
                    let timeout = module.timeout().min(expiry);
                    self.run_operation(module, operation.parameters.clone(), timeout, &cancel)
                        .await
                }
            };
            let label = format!("operation {index} ({})", operation.module);
            match outcome {
                Outcome::Done(module_result) => {
                    if !module_result.success {
                        let reason = module_result
                            .errors
                            .first()
                            .cloned()
                            .unwrap_or_else(|| "did not complete".into());
                        set_status(
                            &mut result,
                            AgentStatus::Failed,
                            format!("{label}: {reason}"),
                        );
                    }
                    result.operations.push(module_result);
                }
                Outcome::Failed(reason) => {
                    set_status(
                        &mut result,
                        AgentStatus::Failed,
                        format!("{label}: {reason}"),
                    );
                    result.operations.push(ModuleResult::failed(reason));
                }
                Outcome::TimedOut => {
                    set_status(
                        &mut result,
                        AgentStatus::Timeout,
                        format!("{label}: timed out"),
                    );
                    result.operations.push(ModuleResult::failed("timed out"));
                }
                Outcome::Cancelled => {
                    set_status(
                        &mut result,
                        AgentStatus::Cancelled,
                        format!("{label}: cancelled"),
                    );
                    result.operations.push(ModuleResult::failed("cancelled"));
                }
            }
        }
        drop(permit);
        result.finished_at = now_timestamp();
        result
    }

    async fn run_operation(
        &self,
        module: &'static dyn modules::Module,
        parameters: serde_json::Value,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Outcome {
        let deadline = Instant::now() + timeout;
        let cancellation = Cancellation::new(deadline);
        let context = ModuleContext {
            root: self.root.clone(),
            cancellation: cancellation.clone(),
            store: self.store.clone(),
            attributes: self.attributes.clone(),
            pool: self.pool.clone(),
            agent_started: self.started,
            now: SystemTime::now(),
        };
        let (sender, receiver) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("mig-{}", module.name()))
            .spawn(move || {
                let _ = crate::priority::lower_current_thread();
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    module.run(&parameters, &context)
                }));
                let _ = sender.send(outcome);
            });
        if let Err(error) = spawned {
            return Outcome::Failed(format!("cannot start the module thread: {error}"));
        }
        tokio::select! {
            received = receiver => match received {
                Ok(Ok(Ok(result))) => Outcome::Done(result),
                Ok(Ok(Err(ModuleError::TimedOut))) => Outcome::TimedOut,
                Ok(Ok(Err(ModuleError::Cancelled))) => Outcome::Cancelled,
                Ok(Ok(Err(error))) => Outcome::Failed(error.to_string()),
                Ok(Err(panic)) => Outcome::Failed(format!("the module crashed: {}", panic_message(&panic))),
                Err(_) => Outcome::Failed("the module thread ended without a result".into()),
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                cancellation.cancel();
                Outcome::TimedOut
            }
            () = cancel.cancelled() => {
                cancellation.cancel();
                Outcome::Cancelled
            }
        }
    }
}

/// The worst status wins: cancelled, then timeout, expired, failed.
fn set_status(result: &mut AgentResult, status: AgentStatus, reason: String) {
    let rank = |status: AgentStatus| match status {
        AgentStatus::Success => 0,
        AgentStatus::Failed => 1,
        AgentStatus::Expired => 2,
        AgentStatus::Timeout => 3,
        AgentStatus::Cancelled => 4,
        AgentStatus::Rejected => 5,
    };
    if rank(status) > rank(result.status) {
        result.status = status;
        result.reason = Some(reason);
    } else if result.reason.is_none() {
        result.reason = Some(reason);
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// The current time at the protocol's resolution.
pub fn now_timestamp() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}
