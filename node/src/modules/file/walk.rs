//! Walking the search paths once for all searches, applying the cheap
//! checks (name first, then size, mode and mtime from one `stat`), and
//! handing files that need reading to the worker pool.
//!
//! ```text
//!  module thread walks ──(batches of jobs, a bounded number out)──▶ rayon pool: read once, hash, scan
//!       │ cheap checks, pruning; reads a batch itself when too many are out │
//!       └──────────────────────────▶ Findings (mutex) ◀─────────────────────┘
//! ```
//!
//! Directory links are never followed (no loops); file links are, inside
//! the root prefix. FIFOs, sockets and devices are never opened. `/proc`,
//! `/sys` and `/dev` are skipped unless a search path is inside them.

use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::inspect;
use super::{Findings, Plan, Test, lock};
use crate::modules::{ModuleContext, ModuleError, logical_under_root, under_root};

/// Directories skipped unless a search path is inside them.
const SPECIAL_DIRECTORIES: [&str; 3] = ["proc", "sys", "dev"];
/// Batches of jobs handed to the pool and not yet done, at most; past it
/// the walking thread reads the next batch itself. Bounds memory however
/// large the tree. Jobs travel in batches so that a thread wake-up is paid
/// per batch, not per file.
const JOB_QUEUE: usize = 32;
const JOB_BATCH: usize = 64;
/// Symbolic links followed in a row before giving up.
const MAX_LINK_HOPS: usize = 40;

/// A search path: a literal directory prefix and glob components after it.
#[derive(Debug, Clone)]
pub(crate) struct RootPattern {
    literal: Vec<String>,
    globs: Vec<glob::Pattern>,
    special: bool,
}

enum Relation {
    Outside,
    /// On the way to the search path: keep descending.
    Ancestor,
    /// Inside the search path, this many levels below it.
    Inside(usize),
}

impl RootPattern {
    pub(crate) fn parse(path: &str) -> Result<Self, String> {
        if !path.starts_with('/') {
            return Err(format!("path '{path}' is not absolute"));
        }
        let mut literal = Vec::new();
        let mut globs = Vec::new();
        for component in Path::new(path).components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(name) => {
                    let name = name.to_string_lossy().into_owned();
                    let is_glob = name.contains(['*', '?', '[']);
                    if is_glob || !globs.is_empty() {
                        globs.push(
                            glob::Pattern::new(&name)
                                .map_err(|error| format!("path '{path}': {error}"))?,
                        );
                    } else {
                        literal.push(name);
                    }
                }
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(format!("path '{path}' may not contain '..'"));
                }
            }
        }
        let special = literal
            .first()
            .is_some_and(|first| SPECIAL_DIRECTORIES.contains(&first.as_str()));
        Ok(Self {
            literal,
            globs,
            special,
        })
    }

    /// The directory to start walking from, as seen from the root.
    fn start(&self) -> PathBuf {
        let mut path = PathBuf::from("/");
        path.extend(&self.literal);
        path
    }

    fn relation(&self, components: PathView<'_>) -> Relation {
        let total = self.literal.len() + self.globs.len();
        for index in 0..components.len().min(total) {
            let component = components.get(index);
            let matches = match self.literal.get(index) {
                Some(literal) => component.as_encoded_bytes() == literal.as_bytes(),
                None => component
                    .to_str()
                    .is_some_and(|name| self.globs[index - self.literal.len()].matches(name)),
            };
            if !matches {
                return Relation::Outside;
            }
        }
        if components.len() < total {
            return Relation::Ancestor;
        }
        // Inside a special directory only searches that name it apply.
        if !self.special
            && components.len() > 0
            && SPECIAL_DIRECTORIES
                .iter()
                .any(|special| components.get(0).as_encoded_bytes() == special.as_bytes())
        {
            return Relation::Outside;
        }
        Relation::Inside(components.len() - total)
    }
}

/// One search's view of one file, as checks are applied.
#[derive(Debug, Clone)]
pub(crate) struct FileState {
    pub(crate) search: usize,
    pub(crate) hits: Vec<bool>,
    /// False once a `matchall` search has failed a check.
    pub(crate) alive: bool,
}

/// A file that needs reading.
pub(crate) struct Job {
    pub(crate) logical: String,
    pub(crate) open_path: PathBuf,
    pub(crate) states: Vec<FileState>,
}

/// A path as seen from the root, as its directory names plus a last name,
/// without building or parsing a path string.
#[derive(Clone, Copy)]
struct PathView<'a> {
    parents: &'a [OsString],
    last: Option<&'a OsStr>,
}

impl<'a> PathView<'a> {
    fn len(&self) -> usize {
        self.parents.len() + usize::from(self.last.is_some())
    }

    fn get(&self, index: usize) -> &'a OsStr {
        match self.parents.get(index) {
            Some(name) => name.as_os_str(),
            None => self.last.unwrap_or_default(),
        }
    }

    fn name(&self) -> Option<&'a OsStr> {
        self.last
            .or_else(|| self.parents.last().map(OsString::as_os_str))
    }

    /// The path as seen from the root, as text.
    fn logical(&self) -> String {
        let mut text = String::new();
        for index in 0..self.len() {
            text.push('/');
            text.push_str(&self.get(index).to_string_lossy());
        }
        if text.is_empty() {
            text.push('/');
        }
        text
    }
}

fn owned_components(logical: &Path) -> Vec<OsString> {
    components_of(logical)
        .into_iter()
        .map(OsStr::to_os_string)
        .collect()
}

fn components_of(logical: &Path) -> Vec<&OsStr> {
    logical
        .components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect()
}

/// Resolves a link chain inside the root prefix: absolute targets are
/// taken relative to the root, not to the host.
pub(crate) fn resolve_link(root: &Path, link: &Path) -> std::io::Result<(PathBuf, Metadata)> {
    let mut current = link.to_path_buf();
    for _ in 0..MAX_LINK_HOPS {
        let metadata = std::fs::symlink_metadata(&current)?;
        if !metadata.file_type().is_symlink() {
            return Ok((current, metadata));
        }
        let target = std::fs::read_link(&current)?;
        current = if target.is_absolute() {
            under_root(root, &target)
        } else {
            current.parent().unwrap_or(Path::new("/")).join(target)
        };
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// Walks every search path and evaluates every file once.
///
/// The calling thread walks, and hands batches of files to read to the
/// pool as it goes; pool threads only ever run ready batches. (A pool
/// draining a channel from a separate walker thread kept its threads
/// waiting on the walker, so runs sharing the pool, as the simulator's
/// do, went one at a time.)
pub(crate) fn sweep(
    plan: &Plan,
    context: &ModuleContext,
    findings: &Mutex<Findings>,
) -> Result<(), ModuleError> {
    let cache = context
        .store
        .as_ref()
        .and_then(|store| store.hash_reader().ok());
    let out = AtomicUsize::new(0);
    let inspect_batch = |batch: Vec<Job>| {
        for job in batch {
            if context.cancellation.check().is_err() {
                return;
            }
            inspect::inspect(plan, context, cache.as_ref(), findings, job);
        }
    };
    let walked = context.pool.in_place_scope(|scope| {
        let hand_off = |batch: Vec<Job>| {
            if out.fetch_add(1, Ordering::AcqRel) < JOB_QUEUE {
                scope.spawn(|_| {
                    inspect_batch(batch);
                    out.fetch_sub(1, Ordering::AcqRel);
                });
            } else {
                out.fetch_sub(1, Ordering::AcqRel);
                inspect_batch(batch);
            }
        };
        let mut walker = Walker {
            plan,
            context,
            findings,
            hand_off: &hand_off,
            batch: Vec::new(),
            visited: 0,
            files_count: 0,
        };
        let walked = walker.walk_all();
        walker.send_batch();
        lock(findings).files_count += walker.files_count;
        walked
    });
    walked?;
    context.cancellation.check()
}

struct Walker<'a> {
    plan: &'a Plan,
    context: &'a ModuleContext,
    findings: &'a Mutex<Findings>,
    /// Takes a batch of files to read (to the pool, or reads it here).
    hand_off: &'a (dyn Fn(Vec<Job>) + Sync),
    batch: Vec<Job>,
    visited: u64,
    files_count: u64,
}

impl Walker<'_> {
    fn send_batch(&mut self) {
        if !self.batch.is_empty() {
            (self.hand_off)(std::mem::take(&mut self.batch));
        }
    }

    fn walk_all(&mut self) -> Result<(), ModuleError> {
        let mut starts: Vec<PathBuf> = self
            .plan
            .searches
            .iter()
            .flat_map(|search| search.roots.iter().map(RootPattern::start))
            .collect();
        starts.sort();
        starts.dedup();
        // A start inside another start is walked as part of it.
        let outermost: Vec<PathBuf> = starts
            .iter()
            .filter(|start| {
                !starts
                    .iter()
                    .any(|other| other != *start && start.starts_with(other))
            })
            .cloned()
            .collect();
        for start in outermost {
            self.walk_start(&start)?;
            if self.plan.all_stopped() {
                break;
            }
        }
        Ok(())
    }

    fn walk_start(&mut self, logical_start: &Path) -> Result<(), ModuleError> {
        let host_start = under_root(&self.context.root, logical_start);
        let metadata = match std::fs::symlink_metadata(&host_start) {
            Ok(metadata) => metadata,
            Err(error) => {
                lock(self.findings).error(format!("ERROR: {}: {error}", logical_start.display()));
                return Ok(());
            }
        };
        if metadata.file_type().is_symlink() {
            match resolve_link(&self.context.root, &host_start) {
                Ok((target, target_metadata)) if target_metadata.is_file() => {
                    let parents = owned_components(logical_start);
                    self.consider_file(
                        PathView {
                            parents: &parents,
                            last: None,
                        },
                        &target,
                        Some(target_metadata),
                    );
                }
                Ok((target, _)) => lock(self.findings).error(format!(
                    "warning: {} is a link to {} and was not followed",
                    logical_start.display(),
                    logical_under_root(&self.context.root, &target).display()
                )),
                Err(error) => {
                    let mut findings = lock(self.findings);
                    findings.open_failed += 1;
                    findings.error(format!("ERROR: {}: {error}", logical_start.display()));
                }
            }
            return Ok(());
        }
        if metadata.is_file() {
            let parents = owned_components(logical_start);
            self.consider_file(
                PathView {
                    parents: &parents,
                    last: None,
                },
                &host_start,
                Some(metadata),
            );
            return Ok(());
        }
        if !metadata.is_dir() {
            return Ok(());
        }
        // The names of the directories above the current entry, kept by
        // depth instead of re-parsing each entry's path.
        let mut parents = owned_components(logical_start);
        let start_depth = parents.len();
        let mut entries = walkdir::WalkDir::new(&host_start)
            .follow_links(false)
            .min_depth(1)
            .into_iter();
        while let Some(entry) = entries.next() {
            self.visited += 1;
            if self.visited.is_multiple_of(256) {
                self.context.cancellation.check()?;
                if self.plan.all_stopped() {
                    return Ok(());
                }
            }
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    let place = error
                        .path()
                        .map(|path| logical_under_root(&self.context.root, path));
                    let mut findings = lock(self.findings);
                    findings.open_failed += 1;
                    let reason = error
                        .io_error()
                        .map_or_else(|| error.to_string(), ToString::to_string);
                    match place {
                        Some(path) => {
                            findings.error(format!("ERROR: {}: {reason}", path.display()))
                        }
                        None => findings.error(format!("ERROR: {reason}")),
                    }
                    continue;
                }
            };
            parents.truncate(start_depth + entry.depth() - 1);
            let view = PathView {
                parents: &parents,
                last: Some(entry.file_name()),
            };
            let file_type = entry.file_type();
            if file_type.is_dir() {
                if self.worth_entering(view) {
                    parents.push(entry.file_name().to_os_string());
                } else {
                    entries.skip_current_dir();
                }
            } else if file_type.is_file() {
                self.consider_file(view, entry.path(), None);
            } else if file_type.is_symlink() {
                if self.active_searches(view).is_empty() {
                    continue;
                }
                // Links to files are evaluated under the link's name; links
                // to directories are not followed.
                match resolve_link(&self.context.root, entry.path()) {
                    Ok((target, target_metadata)) if target_metadata.is_file() => {
                        self.consider_file(view, &target, Some(target_metadata));
                    }
                    Ok(_) => {}
                    Err(error) => {
                        let mut findings = lock(self.findings);
                        findings.open_failed += 1;
                        findings.error(format!("ERROR: {}: {error}", view.logical()));
                    }
                }
            }
            // FIFOs, sockets and devices are never opened.
        }
        Ok(())
    }

    /// Whether any search could still apply inside this directory.
    fn worth_entering(&self, components: PathView<'_>) -> bool {
        self.plan.searches.iter().any(|search| {
            !search.is_stopped()
                && search
                    .roots
                    .iter()
                    .any(|root| match root.relation(components) {
                        Relation::Ancestor => true,
                        Relation::Inside(depth) => depth < search.maxdepth,
                        Relation::Outside => false,
                    })
        })
    }

    fn active_searches(&self, components: PathView<'_>) -> Vec<usize> {
        self.plan
            .searches
            .iter()
            .enumerate()
            .filter(|(_, search)| {
                !search.is_stopped()
                    && search.roots.iter().any(|root| {
                        matches!(root.relation(components), Relation::Inside(depth) if depth <= search.maxdepth)
                    })
            })
            .map(|(index, _)| index)
            .collect()
    }

    /// Applies the cheap checks to a file, then records it or queues it.
    fn consider_file(
        &mut self,
        components: PathView<'_>,
        open_path: &Path,
        known_metadata: Option<Metadata>,
    ) {
        let active = self.active_searches(components);
        if active.is_empty() {
            return;
        }
        self.files_count += 1;
        let name = components
            .name()
            .map(|name| name.to_string_lossy())
            .unwrap_or_default();
        let needs_metadata = active
            .iter()
            .any(|index| self.plan.searches[*index].needs_metadata());
        let metadata = match known_metadata {
            Some(metadata) => Some(metadata),
            None if needs_metadata => match std::fs::metadata(open_path) {
                Ok(metadata) => Some(metadata),
                Err(error) => {
                    let mut findings = lock(self.findings);
                    findings.open_failed += 1;
                    findings.error(format!("ERROR: {}: {error}", components.logical()));
                    return;
                }
            },
            None => None,
        };
        let mut states = Vec::with_capacity(active.len());
        let mut needs_reading = false;
        for index in active {
            let search = &self.plan.searches[index];
            let mut state = FileState {
                search: index,
                hits: vec![false; search.checks.len()],
                alive: true,
            };
            for check_index in &search.metadata_checks {
                let check = &search.checks[*check_index];
                let matched = match (&check.test, &metadata) {
                    (Test::Name(regex), _) => regex.is_match(&name),
                    (Test::Size { min, max }, Some(metadata)) => {
                        (*min..=*max).contains(&metadata.len())
                    }
                    (Test::Mode(regex), Some(metadata)) => {
                        regex.is_match(&super::go_mode_string(metadata.mode()))
                    }
                    (Test::Mtime { after, before }, Some(metadata)) => metadata
                        .modified()
                        .is_ok_and(|modified| modified > *after && modified < *before),
                    _ => false,
                };
                let hit = check.hit(matched);
                state.hits[*check_index] = hit;
                if !hit && search.matchall {
                    state.alive = false;
                    break;
                }
            }
            if state.alive && search.needs_reading() {
                needs_reading = true;
            }
            states.push(state);
        }
        if needs_reading {
            let logical = components.logical();
            self.batch.push(Job {
                logical,
                open_path: open_path.to_path_buf(),
                states,
            });
            if self.batch.len() >= JOB_BATCH {
                self.send_batch();
            }
        } else if states.iter().any(|state| state.hits.iter().any(|hit| *hit)) {
            let logical = components.logical();
            let mut findings = lock(self.findings);
            for state in &states {
                findings.record(self.plan, state, &logical, open_path);
            }
        }
    }
}
