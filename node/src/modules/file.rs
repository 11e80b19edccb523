//! `file`: MIG's find-like search by name, metadata, content and hashes.
//! Answers which files match; never returns their contents.
//!
//! Parameters (MIG's, plus `sha256`/`sha384`/`sha512` lists; the legacy
//! module name `filechecker` means this module):
//!
//! ```json
//! {"searches": {"<label>": {
//!     "description": "...",
//!     "paths": ["/etc", "/usr/bin/*"],          // absolute, globs allowed
//!     "names": ["regex", "!regex"],              // base name; ! inverts
//!     "contents": ["regex", "!regex"],           // per line; ! inverts
//!     "sizes": ["<10m", ">1k", "4096"],          // k m g t, powers of 1024
//!     "modes": ["^-rwx"],                        // regex on Go's mode string
//!     "mtimes": ["<90d", ">5h", "<30m"],
//!     "md5": [], "sha1": [], "sha2": [], "sha3": [],  // sha2/sha3 by length
//!     "sha256": [], "sha384": [], "sha512": [],
//!     "options": {"maxdepth": 1000, "matchall": false, "matchany": false,
//!                 "macroal": false, "mismatch": ["content"], "matchlimit": 1000,
//!                 "maxerrors": 30, "returnsha256": false, "decompress": false}}}}
//! ```
//!
//! Semantics are MIG's: each value is one check. With `matchall` a file is
//! reported once if every check hits it (hash values of one algorithm are
//! alternatives: a file has one SHA-256, so requiring two different ones
//! could never hit, which is what MIG did); without it each check reports
//! the files it hit on its own. `!` inverts a name or content regex;
//! `mismatch` inverts every check of a filter type; `macroal` requires
//! every line to match every content regex (and none of the inverted ones).
//! Links to files are followed and reported under the link's path with the
//! target's metadata; links to directories are not followed. `maxdepth`
//! counts directory levels below a search path; 0 in JSON means MIG's
//! default of 1000, as for `matchlimit`. `matchlimit` bounds the distinct
//! files reported; `maxerrors` bounds the errors listed (default 30).
//! `decompress`, if set on any search, applies to all, and stops at
//! 256 MiB of output per file.
//!
//! Result: `elements` maps each label to a list of
//! `{"file", "search", "fileinfo": {"size", "mode", "lastmodified", "sha256"?}}`;
//! a search or check with no hit yields one entry with `"file": ""`.
//! `statistics` is `{"filescount", "openfailed", "totalhits", "exectime"}`.

mod format;
mod inspect;
mod walk;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use mig_proto::ModuleResult;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value as Json, json};

use self::inspect::HashKind;
use self::walk::RootPattern;
use super::{Module, ModuleContext, ModuleError, go_duration, parse_parameters};

pub use self::format::{go_mode_string, go_time_string};

/// At most this many searches per operation.
const MAX_SEARCHES: usize = 64;
/// At most this many checks per search (big IOC lists fit).
const MAX_CHECKS: usize = 100_000;
/// Each regex compiles to at most this much.
const MAX_REGEX_BYTES: usize = 1 << 20;
/// MIG's defaults for `maxdepth` and `matchlimit`, and its CLI default for
/// `maxerrors`.
const DEFAULT_MAX_DEPTH: u64 = 1000;
const DEFAULT_MATCH_LIMIT: u64 = 1000;
const DEFAULT_MAX_ERRORS: u64 = 30;

pub struct FileModule;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Parameters {
    searches: BTreeMap<String, SearchParameters>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    contents: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sizes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    modes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mtimes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    md5: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sha1: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sha2: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sha3: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sha256: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sha384: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sha512: Vec<String>,
    #[serde(default)]
    options: SearchOptions,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SearchOptions {
    #[serde(default, deserialize_with = "whole_number")]
    maxdepth: u64,
    #[serde(default)]
    matchall: bool,
    #[serde(default, skip_serializing)]
    matchany: bool,
    #[serde(default)]
    macroal: bool,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    mismatch: Vec<String>,
    #[serde(default, deserialize_with = "whole_number")]
    matchlimit: u64,
    #[serde(default, deserialize_with = "whole_number")]
    maxerrors: u64,
    #[serde(default, skip_serializing_if = "is_false")]
    returnsha256: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    decompress: bool,
    /// MIG's debugging switch and remote-filesystem flag: accepted so old
    /// actions load, without effect.
    #[allow(dead_code)]
    #[serde(default, skip_serializing)]
    debug: Option<String>,
    #[allow(dead_code)]
    #[serde(default, skip_serializing)]
    remotefs: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// MIG sent these as JSON floats (`1000.0`); accept any whole number.
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if value < 0.0 || value.fract() != 0.0 || value > 1e15 {
        return Err(serde::de::Error::custom(format!(
            "{value} is not a whole number >= 0"
        )));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(value as u64)
}

fn null_as_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default())
}

/// The filter types `mismatch` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterType {
    Name,
    Size,
    Mode,
    Mtime,
    Content,
    Md5,
    Sha1,
    Sha2,
    Sha3,
}

impl FilterType {
    fn from_mismatch(text: &str) -> Option<Self> {
        Some(match text {
            "name" => Self::Name,
            "size" => Self::Size,
            "mode" => Self::Mode,
            "mtime" => Self::Mtime,
            "content" => Self::Content,
            "md5" => Self::Md5,
            "sha1" => Self::Sha1,
            "sha2" => Self::Sha2,
            "sha3" => Self::Sha3,
            _ => return None,
        })
    }
}

pub(crate) enum Test {
    Name(regex::Regex),
    Mode(regex::Regex),
    Size {
        min: u64,
        max: u64,
    },
    Mtime {
        after: SystemTime,
        before: SystemTime,
    },
    Content(inspect::ContentRegex),
    Hash(HashKind, Vec<u8>),
}

/// One value of one filter.
pub(crate) struct Check {
    /// Which parameter list it came from, for echoing it back.
    list: &'static str,
    value: String,
    inverse: bool,
    mismatch: bool,
    test: Test,
}

impl Check {
    /// MIG's `wantThis`: a match, flipped by `!` and by `mismatch`.
    fn hit(&self, matched: bool) -> bool {
        matched ^ self.inverse ^ self.mismatch
    }
}

/// A search, compiled.
pub(crate) struct Search {
    label: String,
    roots: Vec<RootPattern>,
    checks: Vec<Check>,
    matchall: bool,
    macroal: bool,
    maxdepth: usize,
    matchlimit: u64,
    returnsha256: bool,
    echo: SearchParameters,
    metadata_checks: Vec<usize>,
    content_checks: Vec<usize>,
    hash_kinds: Vec<HashKind>,
    /// Hash check indices by algorithm and digest.
    hash_index: HashMap<HashKind, HashMap<Vec<u8>, Vec<usize>>>,
    /// Set once the search reaches its match limit; read on every
    /// directory entry, so outside the findings' lock.
    stopped: AtomicBool,
}

impl Search {
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    fn needs_metadata(&self) -> bool {
        self.checks.iter().any(|check| {
            matches!(
                check.test,
                Test::Size { .. } | Test::Mode(_) | Test::Mtime { .. }
            )
        })
    }

    fn needs_reading(&self) -> bool {
        !self.content_checks.is_empty() || !self.hash_kinds.is_empty()
    }

    /// With `matchall`: does a file with these per-check hits pass? Hash
    /// checks of one algorithm are alternatives, unless `mismatch` makes
    /// them "none of these", where all must hit.
    fn passes_all(&self, hits: &[bool]) -> bool {
        let mut by_kind: HashMap<HashKind, (bool, bool, bool)> = HashMap::new();
        for (check, hit) in self.checks.iter().zip(hits) {
            match check.test {
                Test::Hash(kind, _) => {
                    let entry = by_kind.entry(kind).or_insert((false, true, check.mismatch));
                    entry.0 |= *hit;
                    entry.1 &= *hit;
                }
                _ if !hit => return false,
                _ => {}
            }
        }
        by_kind
            .values()
            .all(|(any, all, mismatch)| if *mismatch { *all } else { *any })
    }
}

/// The whole operation, compiled.
pub(crate) struct Plan {
    searches: Vec<Search>,
    decompress: bool,
    max_errors: usize,
}

fn compile(parameters: &Json, now: SystemTime) -> Result<Plan, ModuleError> {
    let parameters: Parameters = parse_parameters(parameters)?;
    let invalid = |message: String| ModuleError::InvalidParameters(message);
    if parameters.searches.is_empty() {
        return Err(invalid("no searches".into()));
    }
    if parameters.searches.len() > MAX_SEARCHES {
        return Err(invalid(format!("at most {MAX_SEARCHES} searches")));
    }
    let mut searches = Vec::new();
    let mut decompress = false;
    let mut max_errors = 0u64;
    for (label, search) in parameters.searches {
        if label.is_empty() || label.chars().count() > 64 {
            return Err(invalid(format!(
                "search label '{label}' must be 1 to 64 characters"
            )));
        }
        let compiled = compile_search(&label, search, now)
            .map_err(|message| invalid(format!("search '{label}': {message}")))?;
        decompress |= compiled.echo.options.decompress;
        max_errors = max_errors.max(if compiled.echo.options.maxerrors == 0 {
            DEFAULT_MAX_ERRORS
        } else {
            compiled.echo.options.maxerrors
        });
        searches.push(compiled);
    }
    Ok(Plan {
        searches,
        decompress,
        max_errors: usize::try_from(max_errors).unwrap_or(usize::MAX),
    })
}

fn compile_regex(source: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(source)
        .size_limit(MAX_REGEX_BYTES)
        .dfa_size_limit(MAX_REGEX_BYTES)
        .build()
        .map_err(|error| format!("invalid regex '{source}': {error}"))
}

/// MIG: a leading `!` inverts, unless the value is just `!`.
fn split_inverse(value: &str) -> (bool, &str) {
    match value.strip_prefix('!') {
        Some(rest) if !rest.is_empty() => (true, rest),
        _ => (false, value),
    }
}

fn compile_search(
    label: &str,
    mut parameters: SearchParameters,
    now: SystemTime,
) -> Result<Search, String> {
    if parameters.paths.is_empty() {
        return Err("at least one path is needed".into());
    }
    let options = &mut parameters.options;
    if options.matchall && options.matchany {
        return Err("matchall and matchany exclude each other".into());
    }
    if options.matchany {
        options.matchall = false;
    }
    let mut mismatched = Vec::new();
    for name in &options.mismatch {
        mismatched.push(FilterType::from_mismatch(name).ok_or_else(|| {
            format!("mismatch '{name}' is not one of name, size, mode, mtime, content, md5, sha1, sha2, sha3")
        })?);
    }
    let roots = parameters
        .paths
        .iter()
        .map(|path| RootPattern::parse(path))
        .collect::<Result<Vec<_>, _>>()?;

    let mut checks = Vec::new();
    let mut push =
        |filter: FilterType, list: &'static str, value: &str, inverse: bool, test: Test| {
            checks.push(Check {
                list,
                value: value.to_owned(),
                inverse,
                mismatch: mismatched.contains(&filter),
                test,
            });
        };
    for value in &parameters.names {
        let (inverse, source) = split_inverse(value);
        push(
            FilterType::Name,
            "names",
            value,
            inverse,
            Test::Name(compile_regex(source)?),
        );
    }
    for value in &parameters.modes {
        push(
            FilterType::Mode,
            "modes",
            value,
            false,
            Test::Mode(compile_regex(value)?),
        );
    }
    for value in &parameters.sizes {
        let (min, max) = format::parse_size(value)?;
        push(
            FilterType::Size,
            "sizes",
            value,
            false,
            Test::Size { min, max },
        );
    }
    for value in &parameters.mtimes {
        let (after, before) = format::parse_mtime(value, now)?;
        push(
            FilterType::Mtime,
            "mtimes",
            value,
            false,
            Test::Mtime { after, before },
        );
    }
    for value in &parameters.contents {
        let (inverse, source) = split_inverse(value);
        push(
            FilterType::Content,
            "contents",
            value,
            inverse,
            Test::Content(inspect::ContentRegex::new(source)?),
        );
    }
    /// A parameter list, its filter type, its values, and the algorithm
    /// each hex length means.
    type HashList<'a> = (
        &'static str,
        FilterType,
        &'a Vec<String>,
        &'static [(usize, HashKind)],
    );
    let hash_lists: [HashList<'_>; 7] = [
        (
            "md5",
            FilterType::Md5,
            &parameters.md5,
            &[(32, HashKind::Md5)],
        ),
        (
            "sha1",
            FilterType::Sha1,
            &parameters.sha1,
            &[(40, HashKind::Sha1)],
        ),
        (
            "sha2",
            FilterType::Sha2,
            &parameters.sha2,
            &[
                (64, HashKind::Sha256),
                (96, HashKind::Sha384),
                (128, HashKind::Sha512),
            ],
        ),
        (
            "sha3",
            FilterType::Sha3,
            &parameters.sha3,
            &[
                (56, HashKind::Sha3_224),
                (64, HashKind::Sha3_256),
                (96, HashKind::Sha3_384),
                (128, HashKind::Sha3_512),
            ],
        ),
        (
            "sha256",
            FilterType::Sha2,
            &parameters.sha256,
            &[(64, HashKind::Sha256)],
        ),
        (
            "sha384",
            FilterType::Sha2,
            &parameters.sha384,
            &[(96, HashKind::Sha384)],
        ),
        (
            "sha512",
            FilterType::Sha2,
            &parameters.sha512,
            &[(128, HashKind::Sha512)],
        ),
    ];
    for (list, filter, values, lengths) in hash_lists {
        for value in values {
            let kind = lengths
                .iter()
                .find(|(length, _)| *length == value.len())
                .map(|(_, kind)| *kind)
                .ok_or_else(|| format!("{list} value '{value}' has the wrong length for {list}"))?;
            let digest = hex::decode(value)
                .map_err(|_| format!("{list} value '{value}' is not hexadecimal"))?;
            push(filter, list, value, false, Test::Hash(kind, digest));
        }
    }
    if checks.is_empty() {
        return Err(
            "no filter: give at least one of names, contents, sizes, modes, mtimes or a hash"
                .into(),
        );
    }
    if checks.len() > MAX_CHECKS {
        return Err(format!("at most {MAX_CHECKS} values per search"));
    }

    let mut metadata_checks = Vec::new();
    let mut content_checks = Vec::new();
    let mut hash_kinds = Vec::new();
    let mut hash_index: HashMap<HashKind, HashMap<Vec<u8>, Vec<usize>>> = HashMap::new();
    for (index, check) in checks.iter().enumerate() {
        match &check.test {
            Test::Name(_) | Test::Mode(_) | Test::Size { .. } | Test::Mtime { .. } => {
                metadata_checks.push(index)
            }
            Test::Content(_) => content_checks.push(index),
            Test::Hash(kind, digest) => {
                if !hash_kinds.contains(kind) {
                    hash_kinds.push(*kind);
                }
                hash_index
                    .entry(*kind)
                    .or_default()
                    .entry(digest.clone())
                    .or_default()
                    .push(index);
            }
        }
    }
    let options = &parameters.options;
    let maxdepth = if options.maxdepth == 0 {
        DEFAULT_MAX_DEPTH
    } else {
        options.maxdepth
    };
    let matchlimit = if options.matchlimit == 0 {
        DEFAULT_MATCH_LIMIT
    } else {
        options.matchlimit
    };
    Ok(Search {
        label: label.to_owned(),
        roots,
        matchall: options.matchall,
        macroal: options.macroal,
        maxdepth: usize::try_from(maxdepth).unwrap_or(usize::MAX),
        matchlimit,
        returnsha256: options.returnsha256,
        checks,
        metadata_checks,
        content_checks,
        hash_kinds,
        hash_index,
        stopped: AtomicBool::new(false),
        echo: parameters,
    })
}

/// Where the module's findings accumulate, from the walker and the
/// workers.
#[derive(Default)]
pub(crate) struct Findings {
    files: Vec<FoundFile>,
    file_ids: HashMap<String, usize>,
    /// Per search: with matchall, the matching files; else per check.
    matched: Vec<Vec<usize>>,
    check_hits: Vec<Vec<Vec<usize>>>,
    pub(crate) files_count: u64,
    pub(crate) open_failed: u64,
    errors: Vec<String>,
    errors_dropped: u64,
    max_errors: usize,
}

pub(crate) struct FoundFile {
    logical: String,
    open_path: PathBuf,
}

impl Findings {
    fn new(plan: &Plan) -> Self {
        Self {
            matched: vec![Vec::new(); plan.searches.len()],
            check_hits: plan
                .searches
                .iter()
                .map(|search| vec![Vec::new(); search.checks.len()])
                .collect(),
            max_errors: plan.max_errors,
            ..Self::default()
        }
    }

    pub(crate) fn error(&mut self, message: String) {
        if self.errors.len() < self.max_errors {
            self.errors.push(message);
        } else {
            self.errors_dropped += 1;
        }
    }

    fn file_id(&mut self, logical: &str, open_path: &Path) -> usize {
        if let Some(id) = self.file_ids.get(logical) {
            return *id;
        }
        self.files.push(FoundFile {
            logical: logical.to_owned(),
            open_path: open_path.to_path_buf(),
        });
        self.file_ids
            .insert(logical.to_owned(), self.files.len() - 1);
        self.files.len() - 1
    }

    /// Records the verdict of one search on one file.
    pub(crate) fn record(
        &mut self,
        plan: &Plan,
        state: &walk::FileState,
        logical: &str,
        open_path: &Path,
    ) {
        let search = &plan.searches[state.search];
        if search.is_stopped() {
            return;
        }
        let matched_checks: Vec<usize> = if search.matchall {
            if state.alive && search.passes_all(&state.hits) {
                vec![usize::MAX]
            } else {
                Vec::new()
            }
        } else {
            state
                .hits
                .iter()
                .enumerate()
                .filter(|(_, hit)| **hit)
                .map(|(index, _)| index)
                .collect()
        };
        if matched_checks.is_empty() {
            return;
        }
        let known = self.file_ids.contains_key(logical);
        let id = self.file_id(logical, open_path);
        if search.matchall {
            self.matched[state.search].push(id);
        } else {
            for check in matched_checks {
                self.check_hits[state.search][check].push(id);
            }
        }
        if !known && self.files.len() as u64 >= search.matchlimit {
            search.stopped.store(true, Ordering::Relaxed);
            self.error(format!(
                "search '{}' reached its matchlimit of {} files; results are truncated",
                search.label, search.matchlimit
            ));
        }
    }
}

impl Plan {
    /// Whether every search has reached its match limit.
    pub(crate) fn all_stopped(&self) -> bool {
        self.searches.iter().all(Search::is_stopped)
    }
}

impl Module for FileModule {
    fn name(&self) -> &'static str {
        "file"
    }

    fn check(&self, parameters: &Json) -> Result<(), ModuleError> {
        compile(parameters, SystemTime::now()).map(drop)
    }

    fn run(&self, parameters: &Json, context: &ModuleContext) -> Result<ModuleResult, ModuleError> {
        let started = Instant::now();
        let plan = compile(parameters, context.now)?;
        let findings = Mutex::new(Findings::new(&plan));
        walk::sweep(&plan, context, &findings)?;
        if let Some(store) = &context.store
            && let Err(error) = store.flush_hashes()
        {
            lock(&findings).error(format!("hash cache: {error}"));
        }
        let findings = findings
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(build_result(&plan, findings, context, started))
    }

    fn print(&self, result: &ModuleResult, found_only: bool) -> Vec<String> {
        print_result(result, found_only)
    }
}

pub(crate) fn lock(findings: &Mutex<Findings>) -> std::sync::MutexGuard<'_, Findings> {
    findings
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct FileInfo {
    size: u64,
    mode: String,
    lastmodified: String,
    sha256: Option<String>,
}

impl FileInfo {
    /// MIG's `fileinfo` object, built directly: `json!` would copy every
    /// value through the serializer once more, and the result of a sweep
    /// holds one entry per check.
    fn into_json(self) -> Json {
        let mut info = serde_json::Map::new();
        info.insert("size".into(), Json::from(self.size));
        info.insert("mode".into(), Json::String(self.mode));
        info.insert("lastmodified".into(), Json::String(self.lastmodified));
        if let Some(sha256) = self.sha256 {
            info.insert("sha256".into(), Json::String(sha256));
        }
        Json::Object(info)
    }
}

fn file_info(
    file: &FoundFile,
    want_sha256: bool,
    context: &ModuleContext,
    findings: &mut Findings,
) -> FileInfo {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(&file.open_path) {
        Ok(metadata) => {
            let sha256 = if want_sha256 {
                match inspect::sha256_of(&file.open_path, context) {
                    Ok(digest) => Some(hex::encode(digest)),
                    Err(error) => {
                        findings.error(format!("ERROR: {}: {error}", file.logical));
                        None
                    }
                }
            } else {
                None
            };
            FileInfo {
                size: metadata.len(),
                mode: go_mode_string(metadata.mode()),
                lastmodified: metadata.modified().map(go_time_string).unwrap_or_default(),
                sha256,
            }
        }
        Err(error) => {
            findings.error(format!("ERROR: {}: {error}", file.logical));
            FileInfo {
                size: 0,
                mode: String::new(),
                lastmodified: String::new(),
                sha256: None,
            }
        }
    }
}

fn empty_info() -> Json {
    FileInfo {
        size: 0,
        mode: String::new(),
        lastmodified: String::new(),
        sha256: None,
    }
    .into_json()
}

/// One entry of a search's list in MIG's result.
fn result_entry(file: String, search: Json, fileinfo: Json) -> Json {
    let mut entry = serde_json::Map::new();
    entry.insert("file".into(), Json::String(file));
    entry.insert("search".into(), search);
    entry.insert("fileinfo".into(), fileinfo);
    Json::Object(entry)
}

fn build_result(
    plan: &Plan,
    mut findings: Findings,
    context: &ModuleContext,
    started: Instant,
) -> ModuleResult {
    let mut elements = serde_json::Map::new();
    let mut total_hits = 0u64;
    let files = std::mem::take(&mut findings.files);
    let sort_by_path = |ids: &mut Vec<usize>, files: &[FoundFile]| {
        ids.sort_by(|a, b| files[*a].logical.cmp(&files[*b].logical));
        ids.dedup();
    };
    for (index, search) in plan.searches.iter().enumerate() {
        let mut entries = Vec::new();
        if search.matchall {
            let mut ids = std::mem::take(&mut findings.matched[index]);
            sort_by_path(&mut ids, &files);
            let echo = serde_json::to_value(&search.echo).unwrap_or_default();
            for id in &ids {
                let info = file_info(&files[*id], search.returnsha256, context, &mut findings);
                total_hits += 1;
                entries.push(result_entry(
                    files[*id].logical.clone(),
                    echo.clone(),
                    info.into_json(),
                ));
            }
            if ids.is_empty() {
                entries.push(result_entry(String::new(), echo, empty_info()));
            }
        } else {
            let options = serde_json::to_value(&search.echo.options).unwrap_or_default();
            for (check_index, check) in search.checks.iter().enumerate() {
                let mut ids = std::mem::take(&mut findings.check_hits[index][check_index]);
                sort_by_path(&mut ids, &files);
                for id in &ids {
                    let logical = files[*id].logical.clone();
                    let directory = Path::new(&logical)
                        .parent()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    let info = file_info(&files[*id], search.returnsha256, context, &mut findings);
                    total_hits += 1;
                    entries.push(result_entry(
                        logical,
                        check_echo(check, vec![directory], &options),
                        info.into_json(),
                    ));
                }
                if ids.is_empty() {
                    entries.push(result_entry(
                        String::new(),
                        check_echo(check, search.echo.paths.clone(), &options),
                        empty_info(),
                    ));
                }
            }
        }
        elements.insert(search.label.clone(), Json::Array(entries));
    }
    let mut errors = std::mem::take(&mut findings.errors);
    if findings.errors_dropped > 0 {
        errors.push(format!(
            "{} more errors were not listed (maxerrors)",
            findings.errors_dropped
        ));
    }
    ModuleResult {
        foundanything: total_hits > 0,
        success: true,
        elements: Json::Object(elements),
        statistics: json!({
            "filescount": findings.files_count,
            "openfailed": findings.open_failed,
            "totalhits": total_hits,
            "exectime": go_duration(started.elapsed()),
        }),
        errors,
    }
}

/// The search as MIG echoed it for a single check: its paths, that one
/// value, and the search's options (serialized once per search).
fn check_echo(check: &Check, paths: Vec<String>, options: &Json) -> Json {
    let mut echo = serde_json::Map::new();
    echo.insert(
        "paths".into(),
        Json::Array(paths.into_iter().map(Json::String).collect()),
    );
    echo.insert(
        check.list.into(),
        Json::Array(vec![Json::String(check.value.clone())]),
    );
    echo.insert("options".into(), options.clone());
    Json::Object(echo)
}

fn print_result(result: &ModuleResult, found_only: bool) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(elements) = result.elements.as_object() {
        for (label, entries) in elements {
            for entry in entries.as_array().into_iter().flatten() {
                let file = entry["file"].as_str().unwrap_or("");
                let mut line = if file.is_empty() {
                    if found_only {
                        continue;
                    }
                    format!("0 match found in search '{label}'")
                } else {
                    let info = &entry["fileinfo"];
                    let mut text = format!(
                        "{file} [lastmodified:{}, mode:{}, size:{}",
                        info["lastmodified"].as_str().unwrap_or(""),
                        info["mode"].as_str().unwrap_or(""),
                        info["size"].as_u64().unwrap_or(0)
                    );
                    if let Some(sha256) = info["sha256"].as_str() {
                        text.push_str(&format!(", sha256:{sha256}"));
                    }
                    text.push_str(&format!("] in search '{label}'"));
                    text
                };
                let search = &entry["search"];
                if !search["options"]["matchall"].as_bool().unwrap_or(false) {
                    line.push_str(" on checks");
                    for (list, name) in [
                        ("names", "name"),
                        ("sizes", "size"),
                        ("modes", "mode"),
                        ("mtimes", "mtime"),
                        ("contents", "content"),
                        ("md5", "md5"),
                        ("sha1", "sha1"),
                        ("sha2", "sha2"),
                        ("sha256", "sha2"),
                        ("sha384", "sha2"),
                        ("sha512", "sha2"),
                        ("sha3", "sha3"),
                    ] {
                        for value in search[list].as_array().into_iter().flatten() {
                            line.push_str(&format!(" {name}='{}'", value.as_str().unwrap_or("")));
                        }
                    }
                }
                lines.push(line);
            }
        }
    }
    if !found_only {
        let statistics = &result.statistics;
        lines.push(format!(
            "Statistics: {} files checked, {} failed to open, {} matched, ran in {}.",
            statistics["filescount"].as_u64().unwrap_or(0),
            statistics["openfailed"].as_u64().unwrap_or(0),
            statistics["totalhits"].as_u64().unwrap_or(0),
            statistics["exectime"].as_str().unwrap_or("")
        ));
        for error in &result.errors {
            lines.push(format!("error: {error}"));
        }
    }
    lines
}

#[cfg(test)]
mod tests;
