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
    /// A pool shared with other runtimes (the simulator's many nodes);
    /// `None`: this runtime makes its own of `worker_threads`.
    pub pool: Option<Arc<rayon::ThreadPool>>,
    /// Threads module runs take turns on, shared with other runtimes (the
    /// simulator's); `None`: each run has a thread of its own.
    pub module_threads: Option<Arc<ModuleThreads>>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/"),
            max_concurrent_actions: 4,
            worker_threads: std::thread::available_parallelism().map_or(2, usize::from),
            pool: None,
            module_threads: None,
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

/// How long a module told to stop (cancelled, or past its deadline) has
/// to return before its run ends without it.
const MODULE_STOP_GRACE: Duration = Duration::from_secs(2);

/// The module runtime of one agent.
pub struct Runtime {
    modules: &'static [&'static dyn modules::Module],
    root: PathBuf,
    store: Option<Arc<Store>>,
    attributes: Arc<AgentAttributes>,
    pool: Arc<rayon::ThreadPool>,
    module_threads: Option<Arc<ModuleThreads>>,
    /// Where an action's own work other than its modules runs: the shared
    /// module threads, or a thread of this runtime's own.
    own_work: Arc<ModuleThreads>,
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
        let pool = match config.pool {
            Some(pool) => pool,
            None => Arc::new(
                module_pool(config.worker_threads, "mig-module")
                    .map_err(|error| RuntimeError::Pool(error.to_string()))?,
            ),
        };
        let own_work = match &config.module_threads {
            Some(threads) => threads.clone(),
            None => Arc::new(
                ModuleThreads::new(1, "mig-report")
                    .map_err(|error| RuntimeError::Pool(error.to_string()))?,
            ),
        };
        Ok(Self {
            modules: modules::registry(),
            root: config.root,
            store,
            attributes: Arc::new(attributes),
            pool,
            module_threads: config.module_threads,
            own_work,
            slots: Arc::new(Semaphore::new(config.max_concurrent_actions.max(1))),
            started: SystemTime::now(),
        })
    }

    /// Replaces the module registry (tests use modules that misbehave on
    /// purpose).
    pub fn with_modules(mut self, modules: &'static [&'static dyn modules::Module]) -> Self {
        self.modules = modules;
        self
    }

    fn module(&self, name: &str) -> Option<&'static dyn modules::Module> {
        let canonical = mig_proto::modules::canonical_module_name(name);
        self.modules
            .iter()
            .copied()
            .find(|module| module.name() == canonical)
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
            let outcome = match self.module(&operation.module) {
                None => {
                    let known: Vec<&str> =
                        self.modules.iter().map(|module| module.name()).collect();
                    Outcome::Failed(format!(
                        "unknown module '{}'; this agent has: {}",
                        operation.module,
                        known.join(", ")
                    ))
                }
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

    /// Does `work` where module runs happen, at their priority: an
    /// action's own work (the key agreement for its reports, sealing and
    /// signing its result) waits behind the host's, as its modules do,
    /// while the node's duties to the mesh (checking and passing actions
    /// on) keep their priority. One thread of the runtime's own does it
    /// (the simulator's shared module threads there), in turn, so an
    /// agent catching up on a thousand actions at once starts no thousand
    /// threads. `None` if `work` panicked.
    pub async fn at_run_priority<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (job, answer) = lowered_job(work);
        self.own_work.run(job);
        answer.await.ok()?.ok()
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
        // The context (and the store in it) is let go of, even by a module
        // that panicked, before the run hears it is over.
        let (run, receiver) = lowered_job(move || module.run(&parameters, &context));
        if let Some(threads) = &self.module_threads {
            threads.run(run);
        } else if let Err(error) = std::thread::Builder::new()
            .name(format!("mig-{}", module.name()))
            .spawn(run)
        {
            return Outcome::Failed(format!("cannot start the module thread: {error}"));
        }
        let mut receiver = receiver;
        let mut told_to_stop = false;
        let outcome = tokio::select! {
            received = &mut receiver => match received {
                Ok(Ok(Ok(result))) => Outcome::Done(result),
                Ok(Ok(Err(ModuleError::TimedOut))) => Outcome::TimedOut,
                Ok(Ok(Err(ModuleError::Cancelled))) => Outcome::Cancelled,
                Ok(Ok(Err(error))) => Outcome::Failed(error.to_string()),
                Ok(Err(panic)) => Outcome::Failed(format!("the module crashed: {}", panic_message(&panic))),
                Err(_) => Outcome::Failed("the module thread ended without a result".into()),
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                cancellation.cancel();
                told_to_stop = true;
                Outcome::TimedOut
            }
            () = cancel.cancelled() => {
                cancellation.cancel();
                told_to_stop = true;
                Outcome::Cancelled
            }
        };
        if told_to_stop {
            // Told to stop, a module returns at its next check; waiting a
            // moment for it lets go of what it holds (the store) before the
            // run is over. One that does not stop is left behind.
            let returned = tokio::time::timeout(MODULE_STOP_GRACE, receiver).await;
            if returned.is_err() {
                tracing::warn!(module = module.name(), "a stopped module is still running");
            }
        }
        outcome
    }
}

/// A pool of `threads` threads named `name-<index>`, at the lowest
/// priority, that modules do their parallel work on (the file module's
/// hashing).
pub fn module_pool(
    threads: usize,
    name: &'static str,
) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(move |index| format!("{name}-{index}"))
        .start_handler(|_| {
            let _ = crate::priority::lower_current_thread();
        })
        .build()
}

/// `work` as a job that lowers its thread's priority first and catches a
/// panic, and where its outcome will come (once `work` and all it owns
/// are dropped).
fn lowered_job<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> (ModuleJob, oneshot::Receiver<std::thread::Result<T>>) {
    let (sender, receiver) = oneshot::channel();
    let job = move || {
        let _ = crate::priority::lower_current_thread();
        let _ = sender.send(std::panic::catch_unwind(AssertUnwindSafe(work)));
    };
    (Box::new(job), receiver)
}

/// A few threads, at the lowest priority, that the module runs of many
/// runtimes take turns on (the simulator's fleet); and a runtime's one
/// thread for its actions' other work (`Runtime::at_run_priority`).
/// Niceness is per thread and the scheduler adds up the weights of
/// runnable threads: a thousand
/// simulated agents, each with a module thread of its own at nice 19,
/// together outweighed the nodes' workers and slowed the spread of the
/// action. Plain threads, not a rayon pool: a rayon thread that waits on
/// another pool (the file module's hashing) runs other queued jobs nested
/// in its stack meanwhile, and a run then waited for every run nested
/// above it.
#[derive(Debug)]
pub struct ModuleThreads {
    jobs: std::sync::mpsc::Sender<ModuleJob>,
}

type ModuleJob = Box<dyn FnOnce() + Send>;

impl ModuleThreads {
    /// Starts `threads` threads named `name-<index>`; they end when this
    /// is dropped and their last job is done.
    pub fn new(threads: usize, name: &str) -> std::io::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<ModuleJob>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for index in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                // Each job lowers its thread itself, as a run's own thread does.
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Self { jobs })
    }

    /// Queues `job`; it runs when a thread is free. Only if every thread
    /// had ended (a panic outside a job's own guard) would the job be
    /// dropped unrun, and its run then hears that the thread ended.
    fn run(&self, job: ModuleJob) {
        let _ = self.jobs.send(job);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use mig_proto::{AgentStatus, ModuleResult, Operation};
    use serde_json::json;

    use super::*;
    use crate::modules::Module;

    /// A module for these tests: its name, its timeout and what a run does.
    struct TestModule {
        name: &'static str,
        timeout: Duration,
        run: fn(&ModuleContext) -> Result<ModuleResult, ModuleError>,
    }

    impl Module for TestModule {
        fn name(&self) -> &'static str {
            self.name
        }
        fn timeout(&self) -> Duration {
            self.timeout
        }
        fn check(&self, _: &serde_json::Value) -> Result<(), ModuleError> {
            Ok(())
        }
        fn run(
            &self,
            _: &serde_json::Value,
            context: &ModuleContext,
        ) -> Result<ModuleResult, ModuleError> {
            (self.run)(context)
        }
        fn print(&self, _: &ModuleResult, _: bool) -> Vec<String> {
            Vec::new()
        }
    }

    /// The `Module` trait's default.
    const USUAL_TIMEOUT: Duration = Duration::from_secs(300);

    static SLOW_STOPPED: AtomicBool = AtomicBool::new(false);
    static COUNTED_RUNNING: AtomicUsize = AtomicUsize::new(0);
    static COUNTED_AT_ONCE: AtomicUsize = AtomicUsize::new(0);

    /// Answers at once.
    static QUICK: TestModule = TestModule {
        name: "quick",
        timeout: USUAL_TIMEOUT,
        run: |_| {
            Ok(ModuleResult {
                foundanything: true,
                success: true,
                ..ModuleResult::default()
            })
        },
    };

    /// Never finishes on its own; stops when told, and says it did.
    static SLOW: TestModule = TestModule {
        name: "slow",
        timeout: Duration::from_millis(300),
        run: |context| loop {
            if let Err(error) = context.cancellation.check() {
                SLOW_STOPPED.store(true, Ordering::SeqCst);
                return Err(error);
            }
            std::thread::sleep(Duration::from_millis(5));
        },
    };

    /// Panics.
    static CRASHING: TestModule = TestModule {
        name: "crashing",
        timeout: USUAL_TIMEOUT,
        run: |_| panic!("deliberate test panic"),
    };

    /// Takes a moment, records how many of it ran at once at most, and says
    /// which thread it ran on.
    static COUNTED: TestModule = TestModule {
        name: "counted",
        timeout: USUAL_TIMEOUT,
        run: |_| {
            let running = COUNTED_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
            COUNTED_AT_ONCE.fetch_max(running, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(30));
            COUNTED_RUNNING.fetch_sub(1, Ordering::SeqCst);
            Ok(ModuleResult {
                success: true,
                elements: json!(std::thread::current().name()),
                ..ModuleResult::default()
            })
        },
    };

    static TEST_MODULES: [&dyn Module; 4] = [&QUICK, &SLOW, &CRASHING, &COUNTED];

    fn runtime() -> Runtime {
        Runtime::new(RuntimeConfig::default(), AgentAttributes::default(), None)
            .unwrap()
            .with_modules(&TEST_MODULES)
    }

    fn action(modules: &[&str], seconds_left: i64) -> Action {
        Action {
            name: "test".into(),
            description: Default::default(),
            target: "true".into(),
            threat: Default::default(),
            operations: modules
                .iter()
                .map(|module| Operation {
                    module: (*module).into(),
                    parameters: json!({}),
                })
                .collect(),
            syntaxversion: 2,
            validfrom: Some(now_timestamp().plus_seconds(-60)),
            expireafter: Some(now_timestamp().plus_seconds(seconds_left)),
            nonce: None,
            reply_to: None,
            signatures: Vec::new(),
        }
    }

    async fn run(modules: &[&str], seconds_left: i64, cancel: CancellationToken) -> AgentResult {
        runtime()
            .run_action(ActionId([0; 32]), &action(modules, seconds_left), cancel)
            .await
    }

    #[tokio::test]
    async fn successful_operations() {
        let result = run(&["quick", "quick"], 60, CancellationToken::new()).await;
        assert_eq!(result.status, AgentStatus::Success);
        assert_eq!(result.operations.len(), 2);
        assert!(result.found_anything());
    }

    #[tokio::test]
    async fn runtimes_sharing_module_threads_take_turns_on_them() {
        let threads = Arc::new(ModuleThreads::new(1, "shared-module").unwrap());
        let sharing = || {
            let config = RuntimeConfig {
                module_threads: Some(threads.clone()),
                ..RuntimeConfig::default()
            };
            Runtime::new(config, AgentAttributes::default(), None)
                .unwrap()
                .with_modules(&TEST_MODULES)
        };
        let (first, second) = (sharing(), sharing());
        let counted = action(&["counted", "crashing", "counted"], 60);
        let (one, two) = tokio::join!(
            first.run_action(ActionId([0; 32]), &counted, CancellationToken::new()),
            second.run_action(ActionId([0; 32]), &counted, CancellationToken::new()),
        );
        for result in [one, two] {
            assert_eq!(result.operations[0].elements, json!("shared-module-0"));
            // A panic is caught on the shared thread, which runs the next.
            assert!(result.operations[1].errors[0].contains("deliberate test panic"));
            assert_eq!(result.operations[2].elements, json!("shared-module-0"));
        }
        assert_eq!(COUNTED_AT_ONCE.load(Ordering::SeqCst), 1);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn an_actions_own_work_runs_at_the_module_priority() {
        let work = || {
            (
                std::thread::current().name().map(str::to_owned),
                crate::priority::current_niceness(),
            )
        };
        let own = runtime().at_run_priority(work).await;
        assert_eq!(
            own,
            Some((
                Some("mig-report-0".to_owned()),
                crate::priority::MODULE_NICENESS
            ))
        );
        let threads = Arc::new(ModuleThreads::new(1, "shared-module").unwrap());
        let config = RuntimeConfig {
            module_threads: Some(threads),
            ..RuntimeConfig::default()
        };
        let sharing = Runtime::new(config, AgentAttributes::default(), None).unwrap();
        assert_eq!(
            sharing.at_run_priority(work).await,
            Some((
                Some("shared-module-0".to_owned()),
                crate::priority::MODULE_NICENESS
            ))
        );
        // A panic is the work's own: no answer, and the thread goes on.
        assert_eq!(
            sharing.at_run_priority(|| panic!("deliberate")).await,
            None::<()>
        );
        assert!(sharing.at_run_priority(work).await.is_some());
    }

    #[tokio::test]
    async fn a_panicking_module_fails_its_operation_only() {
        let result = run(&["crashing", "quick"], 60, CancellationToken::new()).await;
        assert_eq!(result.status, AgentStatus::Failed);
        assert!(result.operations[0].errors[0].contains("deliberate test panic"));
        assert!(
            result.operations[1].success,
            "the next operation still runs"
        );
    }

    #[tokio::test]
    async fn the_module_timeout_stops_it() {
        SLOW_STOPPED.store(false, Ordering::SeqCst);
        let result = run(&["slow"], 60, CancellationToken::new()).await;
        assert_eq!(result.status, AgentStatus::Timeout);
        for _ in 0..100 {
            if SLOW_STOPPED.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the module thread did not stop");
    }

    #[tokio::test]
    async fn cancelling_stops_the_action_and_skips_the_rest() {
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            trigger.cancel();
        });
        let result = runtime()
            .run_action(ActionId([0; 32]), &action(&["slow", "quick"], 60), cancel)
            .await;
        assert_eq!(result.status, AgentStatus::Cancelled);
        assert_eq!(
            result.operations[1].errors,
            ["not run: the action was cancelled"]
        );
    }

    #[tokio::test]
    async fn actions_beyond_the_limit_wait_their_turn() {
        let config = RuntimeConfig {
            max_concurrent_actions: 1,
            ..RuntimeConfig::default()
        };
        let runtime = Arc::new(
            Runtime::new(config, AgentAttributes::default(), None)
                .unwrap()
                .with_modules(&TEST_MODULES),
        );
        let first_cancel = CancellationToken::new();
        let first = {
            let runtime = runtime.clone();
            let cancel = first_cancel.clone();
            tokio::spawn(async move {
                runtime
                    .run_action(ActionId([1; 32]), &action(&["slow"], 60), cancel)
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The slot is taken: the second action has not finished after a
        // while, although its module answers at once.
        let second = {
            let runtime = runtime.clone();
            tokio::spawn(async move {
                runtime
                    .run_action(
                        ActionId([2; 32]),
                        &action(&["quick"], 60),
                        CancellationToken::new(),
                    )
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !second.is_finished(),
            "the second action waits for the slot"
        );
        first_cancel.cancel();
        assert_eq!(first.await.unwrap().status, AgentStatus::Cancelled);
        assert_eq!(second.await.unwrap().status, AgentStatus::Success);
    }

    #[tokio::test]
    async fn unknown_modules_and_expired_actions() {
        let result = run(&["memory"], 60, CancellationToken::new()).await;
        assert_eq!(result.status, AgentStatus::Failed);
        assert!(result.operations[0].errors[0].contains("unknown module 'memory'"));
        let result = run(&["quick"], -1, CancellationToken::new()).await;
        assert_eq!(result.status, AgentStatus::Expired);
    }
}
