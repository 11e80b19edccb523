//! Reading a file once: every digest the searches need in one pass, content
//! regexes line by line, transparent gunzip with a ceiling, and the hash
//! cache so an unchanged file is not read again.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

use digest::DynDigest;

use super::walk::{FileState, Job};
use super::{Findings, Plan, Test, lock};
use crate::modules::ModuleContext;
use crate::store::HashReader;

/// Bytes read per call.
const CHUNK: usize = 256 * 1024;

thread_local! {
    /// One read buffer per worker thread, reused for every file.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; CHUNK]);
}
/// A "line" longer than this is cut there (binary files can go megabytes
/// without a newline).
const MAX_LINE: usize = 1 << 20;
/// Decompressed bytes read from one gzip file at most.
const MAX_DECOMPRESSED: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum HashKind {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
}

impl HashKind {
    const ALL: [HashKind; 9] = [
        HashKind::Md5,
        HashKind::Sha1,
        HashKind::Sha256,
        HashKind::Sha384,
        HashKind::Sha512,
        HashKind::Sha3_224,
        HashKind::Sha3_256,
        HashKind::Sha3_384,
        HashKind::Sha3_512,
    ];

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    fn length(self) -> usize {
        match self {
            HashKind::Md5 => 16,
            HashKind::Sha1 => 20,
            HashKind::Sha256 | HashKind::Sha3_256 => 32,
            HashKind::Sha384 | HashKind::Sha3_384 => 48,
            HashKind::Sha512 | HashKind::Sha3_512 => 64,
            HashKind::Sha3_224 => 28,
        }
    }

    fn hasher(self) -> Box<dyn DynDigest + Send> {
        match self {
            HashKind::Md5 => Box::new(md5::Md5::default()),
            HashKind::Sha1 => Box::new(sha1::Sha1::default()),
            HashKind::Sha256 => Box::new(sha2::Sha256::default()),
            HashKind::Sha384 => Box::new(sha2::Sha384::default()),
            HashKind::Sha512 => Box::new(sha2::Sha512::default()),
            HashKind::Sha3_224 => Box::new(sha3::Sha3_224::default()),
            HashKind::Sha3_256 => Box::new(sha3::Sha3_256::default()),
            HashKind::Sha3_384 => Box::new(sha3::Sha3_384::default()),
            HashKind::Sha3_512 => Box::new(sha3::Sha3_512::default()),
        }
    }
}

/// Digests known for one file, by algorithm.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Digests(pub(super) Vec<(HashKind, Vec<u8>)>);

impl Digests {
    fn get(&self, kind: HashKind) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(known, _)| *known == kind)
            .map(|(_, digest)| digest.as_slice())
    }

    /// A presence bitmask, then the digests in `HashKind` order.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut sorted = self.0.clone();
        sorted.sort_by_key(|(kind, _)| *kind);
        let mask = sorted
            .iter()
            .fold(0u16, |mask, (kind, _)| mask | kind.bit());
        let mut bytes = mask.to_le_bytes().to_vec();
        for (_, digest) in sorted {
            bytes.extend(digest);
        }
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let mask = u16::from_le_bytes(bytes.get(..2)?.try_into().ok()?);
        let mut offset = 2;
        let mut digests = Vec::new();
        for kind in HashKind::ALL {
            if mask & kind.bit() != 0 {
                let end = offset + kind.length();
                digests.push((kind, bytes.get(offset..end)?.to_vec()));
                offset = end;
            }
        }
        (offset == bytes.len()).then_some(Self(digests))
    }
}

/// The cache key: what identifies unchanged contents.
pub(super) fn cache_key(metadata: &std::fs::Metadata, decompressed: bool) -> Vec<u8> {
    let mut key = Vec::with_capacity(49);
    for value in [
        metadata.dev(),
        metadata.ino(),
        metadata.size(),
        metadata.mtime() as u64,
        metadata.mtime_nsec() as u64,
        metadata.ctime() as u64,
    ] {
        key.extend(value.to_le_bytes());
    }
    key.extend((metadata.ctime_nsec() as u64).to_le_bytes());
    key.push(u8::from(decompressed));
    key
}

/// A content regex with what is needed to search a whole chunk first.
pub(crate) struct ContentRegex {
    regex: regex::bytes::Regex,
    /// Searching a chunk for a match before checking lines one by one is
    /// exact unless the regex anchors on the whole text (`\A`, `\z`).
    chunk_prefilter: bool,
}

impl ContentRegex {
    pub(crate) fn new(source: &str) -> Result<Self, String> {
        let regex = regex::bytes::RegexBuilder::new(source)
            .multi_line(true)
            .crlf(true)
            .size_limit(super::MAX_REGEX_BYTES)
            .dfa_size_limit(super::MAX_REGEX_BYTES)
            .build()
            .map_err(|error| format!("invalid regex '{source}': {error}"))?;
        let chunk_prefilter = !(source.contains("\\A") || source.contains("\\z"));
        Ok(Self {
            regex,
            chunk_prefilter,
        })
    }
}

/// Content state of one search on one file.
struct ContentScan {
    state_index: usize,
    search: usize,
    checks: Vec<usize>,
    macroal: bool,
    /// Per check: some line matched the regex.
    line_matched: Vec<bool>,
    /// With macroal: every line so far satisfied every regex.
    all_lines_ok: bool,
    lines_seen: u64,
}

impl ContentScan {
    fn done(&self) -> bool {
        if self.macroal {
            !self.all_lines_ok
        } else {
            self.line_matched.iter().all(|matched| *matched)
        }
    }

    /// Looks at a run of whole lines.
    fn feed(&mut self, plan: &Plan, search: usize, text: &[u8]) {
        let checks = &plan.searches[search].checks;
        let regex_of = |index: usize| match &checks[index].test {
            Test::Content(content) => Some(content),
            _ => None,
        };
        if self.macroal {
            for line in lines(text) {
                if !self.all_lines_ok {
                    return;
                }
                self.lines_seen += 1;
                for (position, check_index) in self.checks.iter().enumerate() {
                    let Some(content) = regex_of(*check_index) else {
                        continue;
                    };
                    let matched = content.regex.is_match(line);
                    self.line_matched[position] |= matched;
                    if matched == checks[*check_index].inverse {
                        self.all_lines_ok = false;
                    }
                }
            }
            return;
        }
        for (position, check_index) in self.checks.iter().enumerate() {
            if self.line_matched[position] {
                continue;
            }
            let Some(content) = regex_of(*check_index) else {
                continue;
            };
            if content.chunk_prefilter && !content.regex.is_match(text) {
                continue;
            }
            self.line_matched[position] = lines(text).any(|line| content.regex.is_match(line));
        }
        self.lines_seen += 1;
    }

    /// The content checks' hits once the file is read.
    fn finish(&self, plan: &Plan, state: &mut FileState) {
        let search = &plan.searches[state.search];
        for (position, check_index) in self.checks.iter().enumerate() {
            let check = &search.checks[*check_index];
            let hit = if self.macroal {
                check.mismatch ^ (self.all_lines_ok && self.lines_seen > 0)
            } else {
                check.hit(self.line_matched[position])
            };
            state.hits[*check_index] = hit;
            if !hit && search.matchall {
                state.alive = false;
            }
        }
    }
}

/// Lines without their `\n` or `\r\n`, as Go's line scanner gives them.
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    body.split(|byte| *byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
}

fn open_regular(path: &Path) -> std::io::Result<(File, std::fs::Metadata)> {
    // O_NONBLOCK: if the file was swapped for a FIFO since it was listed,
    // opening it must not hang.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok((file, metadata))
}

/// Reads a job's file once and applies the content and hash checks.
pub(crate) fn inspect(
    plan: &Plan,
    context: &ModuleContext,
    cache: Option<&HashReader>,
    findings: &Mutex<Findings>,
    mut job: Job,
) {
    let mut needed: Vec<HashKind> = Vec::new();
    let mut scans = Vec::new();
    for (state_index, state) in job.states.iter().enumerate() {
        if !state.alive {
            continue;
        }
        let search = &plan.searches[state.search];
        for kind in &search.hash_kinds {
            if !needed.contains(kind) {
                needed.push(*kind);
            }
        }
        if !search.content_checks.is_empty() {
            scans.push(ContentScan {
                state_index,
                search: state.search,
                checks: search.content_checks.clone(),
                macroal: search.macroal,
                line_matched: vec![false; search.content_checks.len()],
                all_lines_ok: true,
                lines_seen: 0,
            });
        }
    }
    if !needed.is_empty() || !scans.is_empty() {
        match read_file(plan, context, cache, &job.open_path, &needed, &mut scans) {
            Ok(digests) => {
                for scan in &scans {
                    scan.finish(plan, &mut job.states[scan.state_index]);
                }
                for state in &mut job.states {
                    apply_hashes(plan, state, &digests);
                }
            }
            Err(error) => {
                let mut findings = lock(findings);
                findings.open_failed += 1;
                findings.error(format!("ERROR: {}: {error}", job.logical));
                // Checks that needed the contents did not hit.
                for state in &mut job.states {
                    let search = &plan.searches[state.search];
                    if search.needs_reading() && search.matchall {
                        state.alive = false;
                    }
                }
            }
        }
    }
    let mut findings = lock(findings);
    for state in &job.states {
        findings.record(plan, state, &job.logical, &job.open_path);
    }
}

fn apply_hashes(plan: &Plan, state: &mut FileState, digests: &Digests) {
    if !state.alive {
        return;
    }
    let search = &plan.searches[state.search];
    for kind in &search.hash_kinds {
        let Some(by_digest) = search.hash_index.get(kind) else {
            continue;
        };
        let equal: &[usize] = digests
            .get(*kind)
            .and_then(|digest| by_digest.get(digest))
            .map_or(&[], Vec::as_slice);
        for indices in by_digest.values() {
            for index in indices {
                state.hits[*index] = search.checks[*index].hit(equal.contains(index));
            }
        }
    }
    // Under matchall a hash group fails as a whole; `passes_all` decides.
}

/// Computes the digests needed (from the cache where possible) and feeds
/// the content scans, reading the file at most once.
fn read_file(
    plan: &Plan,
    context: &ModuleContext,
    cache: Option<&HashReader>,
    path: &Path,
    needed: &[HashKind],
    scans: &mut [ContentScan],
) -> Result<Digests, String> {
    let mut known = Digests::default();
    // A file whose digests are all cached is answered from one `stat`,
    // without being opened. (Gzip files may be read decompressed, so they
    // are opened to look at their first bytes.)
    if scans.is_empty()
        && !plan.decompress
        && let Some(cache) = cache
    {
        let metadata = std::fs::metadata(path).map_err(|error| error.to_string())?;
        if metadata.is_file()
            && let Some(bytes) = cache.get(&cache_key(&metadata, false))
            && let Some(cached) = Digests::decode(&bytes)
        {
            if needed.iter().all(|kind| cached.get(*kind).is_some()) {
                return Ok(cached);
            }
            known = cached;
        }
    }
    let (mut file, metadata) = open_regular(path).map_err(|error| error.to_string())?;
    let mut decompressed = false;
    if plan.decompress {
        let mut magic = [0u8; 2];
        let peeked = read_up_to(&mut file, &mut magic).map_err(|error| error.to_string())?;
        file.seek(SeekFrom::Start(0))
            .map_err(|error| error.to_string())?;
        decompressed = peeked == 2 && magic == [0x1f, 0x8b];
    }
    let key = cache_key(&metadata, decompressed);
    if known.0.is_empty()
        && !needed.is_empty()
        && let Some(cache) = cache
        && let Some(bytes) = cache.get(&key)
        && let Some(cached) = Digests::decode(&bytes)
    {
        known = cached;
    }
    let mut hashers: Vec<(HashKind, Box<dyn DynDigest + Send>)> = needed
        .iter()
        .filter(|kind| known.get(**kind).is_none())
        .map(|kind| (*kind, kind.hasher()))
        .collect();
    if hashers.is_empty() && scans.is_empty() {
        return Ok(known);
    }
    let mut reader: Box<dyn Read> = if decompressed {
        Box::new(flate2::read::MultiGzDecoder::new(file).take(MAX_DECOMPRESSED + 1))
    } else {
        Box::new(file)
    };

    READ_BUFFER.with_borrow_mut(|buffer| -> Result<(), String> {
        let mut carried: Vec<u8> = Vec::new();
        let mut total: u64 = 0;
        loop {
            context
                .cancellation
                .check()
                .map_err(|error| error.to_string())?;
            let read = match reader.read(buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error.to_string()),
            };
            total += read as u64;
            if decompressed && total > MAX_DECOMPRESSED {
                return Err(format!(
                    "decompressed contents exceed {MAX_DECOMPRESSED} bytes; stopped"
                ));
            }
            let chunk = &buffer[..read];
            for (_, hasher) in &mut hashers {
                hasher.update(chunk);
            }
            if scans.iter().any(|scan| !scan.done()) {
                feed_lines(plan, scans, &mut carried, chunk);
            }
            if hashers.is_empty() && scans.iter().all(ContentScan::done) {
                break;
            }
        }
        if !carried.is_empty() {
            for scan in scans.iter_mut() {
                scan.feed(plan, scan.search, &carried);
            }
        }
        Ok(())
    })?;
    let computed = !hashers.is_empty();
    for (kind, hasher) in hashers {
        known.0.push((kind, hasher.finalize().to_vec()));
    }
    if computed && let Some(store) = &context.store {
        let _ = store.cache_hashes(key, known.encode());
    }
    Ok(known)
}

/// Reads until `buffer` is full or the file ends.
fn read_up_to(file: &mut File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Feeds complete lines to the scans, carrying a partial last line over.
fn feed_lines(plan: &Plan, scans: &mut [ContentScan], carried: &mut Vec<u8>, chunk: &[u8]) {
    let Some(last_newline) = memchr::memrchr(b'\n', chunk) else {
        carried.extend_from_slice(chunk);
        if carried.len() > MAX_LINE {
            let line = std::mem::take(carried);
            for scan in scans.iter_mut() {
                scan.feed(plan, scan.search, &line);
            }
        }
        return;
    };
    let (complete, rest) = chunk.split_at(last_newline + 1);
    if carried.is_empty() {
        for scan in scans.iter_mut() {
            scan.feed(plan, scan.search, complete);
        }
    } else {
        carried.extend_from_slice(complete);
        let joined = std::mem::take(carried);
        for scan in scans.iter_mut() {
            scan.feed(plan, scan.search, &joined);
        }
    }
    carried.extend_from_slice(rest);
}

/// The SHA-256 of a file, from the cache when possible (`returnsha256`).
pub(crate) fn sha256_of(path: &Path, context: &ModuleContext) -> Result<Vec<u8>, String> {
    let (mut file, metadata) = open_regular(path).map_err(|error| error.to_string())?;
    let key = cache_key(&metadata, false);
    if let Some(store) = &context.store
        && let Ok(Some(bytes)) = store.cached_hashes(&key)
        && let Some(digest) = Digests::decode(&bytes)
            .and_then(|cached| cached.get(HashKind::Sha256).map(<[u8]>::to_vec))
    {
        return Ok(digest);
    }
    let mut hasher = HashKind::Sha256.hasher();
    let mut buffer = vec![0u8; CHUNK];
    loop {
        context
            .cancellation
            .check()
            .map_err(|error| error.to_string())?;
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => hasher.update(&buffer[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(hasher.finalize().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_encode_and_decode() {
        let digests = Digests(vec![
            (HashKind::Sha256, vec![1; 32]),
            (HashKind::Md5, vec![2; 16]),
        ]);
        let decoded = Digests::decode(&digests.encode()).unwrap();
        assert_eq!(decoded.get(HashKind::Sha256), Some(&[1u8; 32][..]));
        assert_eq!(decoded.get(HashKind::Md5), Some(&[2u8; 16][..]));
        assert!(Digests::decode(&[0xff, 0xff, 1]).is_none());
    }

    #[test]
    fn lines_strip_terminators() {
        let collected: Vec<&[u8]> = lines(b"a\r\nb\n\nc\n").collect();
        assert_eq!(collected, vec![&b"a"[..], b"b", b"", b"c"]);
    }
}
