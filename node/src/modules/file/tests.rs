//! MIG's file-search semantics, option by option, on trees each test
//! builds: names, sizes, modes, mtimes, contents (with `!`, `macroal` and
//! `mismatch`), every hash, `matchall` against `matchany`, `maxdepth`,
//! `matchlimit`, `maxerrors`, `returnsha256`, `decompress`, links, special
//! files, the root prefix and the hash cache.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mig_proto::{AgentAttributes, ModuleResult};
use serde_json::{Value as Json, json};
use sha2::Digest;

use super::FileModule;
use super::inspect::{Digests, HashKind, cache_key};
use crate::modules::testing::{context_with, plant};
use crate::modules::{Module, ModuleContext, ModuleError};
use crate::store::Store;

fn context(root: &Path, store: Option<Arc<Store>>) -> ModuleContext {
    context_with(root, store, AgentAttributes::default())
}

fn write(root: &Path, path: &str, contents: &[u8]) {
    plant(root, path, contents);
}

fn sha256_hex(contents: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(contents))
}

fn run_in(root: &Path, parameters: Json) -> ModuleResult {
    FileModule.run(&parameters, &context(root, None)).unwrap()
}

/// The files reported for a label, sorted, without the empty "no match"
/// entries.
fn files(result: &ModuleResult, label: &str) -> Vec<String> {
    let mut found: Vec<String> = result.elements[label]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["file"].as_str().unwrap().to_owned())
        .filter(|file| !file.is_empty())
        .collect();
    found.sort();
    found.dedup();
    found
}

fn search(parameters: Json) -> Json {
    json!({"searches": {"s1": parameters}})
}

/// A small tree: binaries, configs, a nested directory chain.
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "/usr/bin/wget", b"wget binary\nlinux-x86-64.so\n");
    write(root, "/usr/bin/vim", &vec![b'v'; 5000]);
    write(
        root,
        "/etc/passwd",
        b"root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/sh\n",
    );
    write(
        root,
        "/etc/shadow",
        b"root:$6$salt$hash:19000:0:99999:7:::\nbob:!:19000::::::\n",
    );
    write(
        root,
        "/home/bob/.ssh/authorized_keys",
        b"# keys\nssh-ed25519 AAAAgood bob@laptop\n",
    );
    write(root, "/deep/1/2/3/4/leaf", b"leaf");
    fs::set_permissions(root.join("usr/bin/wget"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root.join("etc/shadow"), fs::Permissions::from_mode(0o640)).unwrap();
    dir
}

#[test]
fn names_with_inversion() {
    let dir = tree();
    let result = run_in(
        dir.path(),
        search(json!({"paths": ["/usr/bin"], "names": ["^wg"]})),
    );
    assert_eq!(files(&result, "s1"), ["/usr/bin/wget"]);
    assert!(result.foundanything && result.success);
    let result = run_in(
        dir.path(),
        search(json!({"paths": ["/usr/bin"], "names": ["!^wg"]})),
    );
    assert_eq!(files(&result, "s1"), ["/usr/bin/vim"]);
}

#[test]
fn sizes_modes_and_mtimes() {
    let dir = tree();
    let root = dir.path();
    let result = run_in(root, search(json!({"paths": ["/"], "sizes": [">4k"]})));
    assert_eq!(files(&result, "s1"), ["/usr/bin/vim"]);
    let result = run_in(
        root,
        search(json!({"paths": ["/usr/bin"], "sizes": ["5000"]})),
    );
    assert_eq!(files(&result, "s1"), ["/usr/bin/vim"]);
    let result = run_in(
        root,
        search(json!({"paths": ["/"], "modes": ["^-rwxr-xr-x$"]})),
    );
    assert_eq!(files(&result, "s1"), ["/usr/bin/wget"]);
    let result = run_in(
        root,
        search(json!({"paths": ["/etc"], "modes": ["^-rw-r-----"]})),
    );
    assert_eq!(files(&result, "s1"), ["/etc/shadow"]);

    let old = SystemTime::now() - Duration::from_secs(10 * 86_400);
    fs::File::options()
        .write(true)
        .open(root.join("etc/passwd"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let result = run_in(root, search(json!({"paths": ["/etc"], "mtimes": [">5d"]})));
    assert_eq!(files(&result, "s1"), ["/etc/passwd"]);
    let result = run_in(root, search(json!({"paths": ["/etc"], "mtimes": ["<1h"]})));
    assert_eq!(files(&result, "s1"), ["/etc/shadow"]);
}

#[test]
fn contents_any_line_inverted_and_macroal() {
    let dir = tree();
    let root = dir.path();
    let result = run_in(
        root,
        search(json!({"paths": ["/etc"], "contents": ["^root:\\$6\\$"]})),
    );
    assert_eq!(files(&result, "s1"), ["/etc/shadow"]);
    // `!` : files where no line matches.
    let result = run_in(
        root,
        search(json!({"paths": ["/etc"], "contents": ["!^root:\\$6\\$"]})),
    );
    assert_eq!(files(&result, "s1"), ["/etc/passwd"]);
    // macroal: every line must match; authorized_keys with only known keys.
    let allowed = "^((#.*)|(ssh-ed25519 AAAAgood .*))$";
    let keys = json!({"paths": ["/home"], "names": ["^authorized_keys$"], "contents": [allowed],
                      "options": {"macroal": true, "matchall": true}});
    assert_eq!(
        files(&run_in(root, search(keys.clone())), "s1"),
        ["/home/bob/.ssh/authorized_keys"]
    );
    // A rogue key appears: with mismatch=content the file is reported.
    let mut rogue = keys.clone();
    rogue["options"]["mismatch"] = json!(["content"]);
    assert!(files(&run_in(root, search(rogue.clone())), "s1").is_empty());
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(root.join("home/bob/.ssh/authorized_keys"))
        .unwrap();
    file.write_all(b"ssh-rsa AAAAevil attacker\n").unwrap();
    assert!(files(&run_in(root, search(keys)), "s1").is_empty());
    assert_eq!(
        files(&run_in(root, search(rogue)), "s1"),
        ["/home/bob/.ssh/authorized_keys"]
    );
}

#[test]
fn content_lines_end_at_crlf_and_span_read_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mut big = vec![b'x'; 300 * 1024];
    big.extend_from_slice(b"\r\nneedle at the end\r\n");
    write(dir.path(), "/data/big", &big);
    let result = run_in(
        dir.path(),
        search(json!({"paths": ["/data"], "contents": ["^needle at the end$"]})),
    );
    assert_eq!(files(&result, "s1"), ["/data/big"]);
}

#[test]
fn every_hash_kind() {
    let dir = tree();
    let root = dir.path();
    let contents = fs::read(root.join("usr/bin/wget")).unwrap();
    let hashes = [
        ("md5", hex::encode(md5::Md5::digest(&contents))),
        ("sha1", hex::encode(sha1::Sha1::digest(&contents))),
        ("sha2", hex::encode(sha2::Sha256::digest(&contents))),
        ("sha2", hex::encode(sha2::Sha384::digest(&contents))),
        ("sha2", hex::encode(sha2::Sha512::digest(&contents))),
        ("sha3", hex::encode(sha3::Sha3_224::digest(&contents))),
        ("sha3", hex::encode(sha3::Sha3_256::digest(&contents))),
        ("sha3", hex::encode(sha3::Sha3_384::digest(&contents))),
        ("sha3", hex::encode(sha3::Sha3_512::digest(&contents))),
        ("sha256", hex::encode(sha2::Sha256::digest(&contents))),
        ("sha384", hex::encode(sha2::Sha384::digest(&contents))),
        (
            "sha512",
            hex::encode(sha2::Sha512::digest(&contents)).to_uppercase(),
        ),
    ];
    for (list, value) in hashes {
        let result = run_in(root, search(json!({"paths": ["/"], list: [value]})));
        assert_eq!(files(&result, "s1"), ["/usr/bin/wget"], "{list} {value}");
    }
    let error = FileModule
        .run(
            &search(json!({"paths": ["/"], "sha2": ["abcd"]})),
            &context(root, None),
        )
        .unwrap_err();
    assert!(
        matches!(error, ModuleError::InvalidParameters(_)),
        "{error}"
    );
}

#[test]
fn matchall_ands_checks_and_matchany_reports_each() {
    let dir = tree();
    let root = dir.path();
    let wget = fs::read(root.join("usr/bin/wget")).unwrap();
    let parameters =
        json!({"paths": ["/usr/bin"], "names": ["^vim$"], "sha256": [sha256_hex(&wget)]});
    // matchany (the JSON default): each check on its own.
    let result = run_in(root, search(parameters.clone()));
    assert_eq!(files(&result, "s1"), ["/usr/bin/vim", "/usr/bin/wget"]);
    let entries = result.elements["s1"].as_array().unwrap();
    let vim = entries
        .iter()
        .find(|entry| entry["file"] == "/usr/bin/vim")
        .unwrap();
    assert_eq!(
        vim["search"]["names"],
        json!(["^vim$"]),
        "the check that hit is echoed"
    );
    assert_eq!(vim["search"]["paths"], json!(["/usr/bin"]));
    assert_eq!(result.statistics["totalhits"], 2);
    // matchall: no file is both.
    let mut all = parameters;
    all["options"] = json!({"matchall": true});
    let result = run_in(root, search(all.clone()));
    assert!(files(&result, "s1").is_empty());
    assert!(!result.foundanything);
    assert_eq!(
        result.elements["s1"][0]["file"], "",
        "an empty entry says nothing matched"
    );
    all["names"] = json!(["^wg"]);
    assert_eq!(files(&run_in(root, search(all)), "s1"), ["/usr/bin/wget"]);
}

#[test]
fn matchall_treats_hashes_of_one_kind_as_alternatives() {
    let dir = tree();
    let root = dir.path();
    let wget = fs::read(root.join("usr/bin/wget")).unwrap();
    let parameters = json!({"paths": ["/usr/bin"], "names": ["^wg"],
        "sha256": [sha256_hex(b"other"), sha256_hex(&wget)], "options": {"matchall": true}});
    assert_eq!(
        files(&run_in(root, search(parameters.clone())), "s1"),
        ["/usr/bin/wget"]
    );
    let mut none_of = parameters;
    none_of["names"] = json!(["."]);
    none_of["options"]["mismatch"] = json!(["sha2"]);
    assert_eq!(
        files(&run_in(root, search(none_of)), "s1"),
        ["/usr/bin/vim"]
    );
}

#[test]
fn mismatch_inverts_a_filter() {
    let dir = tree();
    let result = run_in(
        dir.path(),
        search(
            json!({"paths": ["/usr/bin"], "names": ["^wget$"], "options": {"mismatch": ["name"]}}),
        ),
    );
    assert_eq!(files(&result, "s1"), ["/usr/bin/vim"]);
}

#[test]
fn maxdepth_counts_levels_below_the_path() {
    let dir = tree();
    let find = |depth: u64| {
        files(
            &run_in(
                dir.path(),
                search(
                    json!({"paths": ["/deep"], "names": ["leaf"], "options": {"maxdepth": depth}}),
                ),
            ),
            "s1",
        )
    };
    // /deep/1/2/3/4/leaf is 5 levels below /deep.
    assert!(find(4).is_empty());
    assert_eq!(find(5), ["/deep/1/2/3/4/leaf"]);
    assert_eq!(
        find(0),
        ["/deep/1/2/3/4/leaf"],
        "0 means MIG's default of 1000"
    );
}

#[test]
fn matchlimit_and_maxerrors_bound_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    for index in 0..50 {
        write(dir.path(), &format!("/many/f{index:02}"), b"x");
    }
    let result = run_in(
        dir.path(),
        search(
            json!({"paths": ["/many"], "names": ["^f"], "options": {"matchlimit": 10, "matchall": true}}),
        ),
    );
    assert_eq!(files(&result, "s1").len(), 10);
    assert!(
        result
            .errors
            .iter()
            .any(|error| error.contains("matchlimit"))
    );

    for index in 0..40 {
        symlink(
            format!("/nowhere/{index}"),
            dir.path().join(format!("many/broken{index}")),
        )
        .unwrap();
    }
    let result = run_in(
        dir.path(),
        search(json!({"paths": ["/many"], "names": ["^broken"], "options": {"maxerrors": 5}})),
    );
    assert_eq!(result.statistics["openfailed"], 40);
    assert_eq!(
        result.errors.len(),
        6,
        "five listed and a count of the rest: {:?}",
        result.errors
    );
    assert!(result.errors[5].contains("35 more errors"));
}

#[test]
fn returnsha256_adds_the_digest() {
    let dir = tree();
    let result = run_in(
        dir.path(),
        search(
            json!({"paths": ["/usr/bin"], "names": ["^wget$"], "options": {"returnsha256": true}}),
        ),
    );
    let wget = fs::read(dir.path().join("usr/bin/wget")).unwrap();
    assert_eq!(
        result.elements["s1"][0]["fileinfo"]["sha256"],
        sha256_hex(&wget)
    );
    assert_eq!(result.elements["s1"][0]["fileinfo"]["mode"], "-rwxr-xr-x");
    assert_eq!(result.elements["s1"][0]["fileinfo"]["size"], wget.len());
}

#[test]
fn decompress_reads_through_gzip_and_stops_bombs() {
    let dir = tempfile::tempdir().unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(b"secret marker inside\n").unwrap();
    write(dir.path(), "/logs/app.log.gz", &encoder.finish().unwrap());
    let parameters = json!({"paths": ["/logs"], "contents": ["secret marker"]});
    assert!(
        files(&run_in(dir.path(), search(parameters.clone())), "s1").is_empty(),
        "compressed bytes do not match"
    );
    let mut decompressing = parameters;
    decompressing["options"] = json!({"decompress": true});
    assert_eq!(
        files(&run_in(dir.path(), search(decompressing.clone())), "s1"),
        ["/logs/app.log.gz"]
    );

    // 300 MiB of zeros compress to about 300 KiB.
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..300 {
        bomb.write_all(&zeros).unwrap();
    }
    write(dir.path(), "/logs/bomb.gz", &bomb.finish().unwrap());
    let result = run_in(dir.path(), search(decompressing));
    assert!(
        result
            .errors
            .iter()
            .any(|error| error.contains("bomb.gz") && error.contains("exceed")),
        "{:?}",
        result.errors
    );
    assert_eq!(files(&result, "s1"), ["/logs/app.log.gz"]);
}

#[test]
fn links_to_files_are_reported_under_the_link_and_directory_links_are_not_followed() {
    let dir = tree();
    let root = dir.path();
    symlink("/usr/bin/wget", root.join("etc/wget-link")).unwrap();
    symlink("/", root.join("etc/loop")).unwrap();
    let wget = fs::read(root.join("usr/bin/wget")).unwrap();
    let result = run_in(
        root,
        search(json!({"paths": ["/etc"], "sha256": [sha256_hex(&wget)]})),
    );
    assert_eq!(
        files(&result, "s1"),
        ["/etc/wget-link"],
        "the absolute link resolves inside the root"
    );
    let entry = &result.elements["s1"][0];
    assert_eq!(
        entry["fileinfo"]["mode"], "-rwxr-xr-x",
        "metadata is the target's"
    );
    // The loop link is not followed: nothing under /etc/loop is reported.
    let result = run_in(root, search(json!({"paths": ["/etc"], "names": ["."]})));
    assert!(
        files(&result, "s1")
            .iter()
            .all(|file| !file.starts_with("/etc/loop/"))
    );
}

#[test]
fn special_files_are_never_opened() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("spool/pipe");
    fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    write(dir.path(), "/spool/plain", b"pipe contents\n");
    // Would block forever if the FIFO were opened for reading.
    let result = run_in(
        dir.path(),
        search(json!({"paths": ["/spool"], "contents": ["pipe"]})),
    );
    assert_eq!(files(&result, "s1"), ["/spool/plain"]);
    assert_eq!(result.statistics["filescount"], 1);
}

#[test]
fn proc_sys_and_dev_are_skipped_unless_named() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "/proc/1/status", b"Name: init\n");
    write(dir.path(), "/etc/status", b"ok\n");
    let result = run_in(
        dir.path(),
        search(json!({"paths": ["/"], "names": ["^status$"]})),
    );
    assert_eq!(files(&result, "s1"), ["/etc/status"]);
    let result = run_in(
        dir.path(),
        search(json!({"paths": ["/proc"], "names": ["^status$"]})),
    );
    assert_eq!(files(&result, "s1"), ["/proc/1/status"]);
}

#[test]
fn unreadable_files_are_counted_not_fatal() {
    let dir = tree();
    symlink("/does/not/exist", dir.path().join("etc/dangling")).unwrap();
    let result = run_in(
        dir.path(),
        search(json!({"paths": ["/etc"], "contents": ["root"]})),
    );
    assert!(result.success);
    assert_eq!(result.statistics["openfailed"], 1);
    assert_eq!(files(&result, "s1"), ["/etc/passwd", "/etc/shadow"]);
}

#[test]
fn globs_and_several_searches_share_one_walk() {
    let dir = tree();
    let parameters = json!({"searches": {
        "binaries": {"paths": ["/usr/*"], "names": ["^vim$"]},
        "configs": {"paths": ["/etc/pass*"], "contents": ["bob"]}}});
    let result = run_in(dir.path(), parameters);
    assert_eq!(files(&result, "binaries"), ["/usr/bin/vim"]);
    assert_eq!(files(&result, "configs"), ["/etc/passwd"]);
}

#[test]
fn the_hash_cache_answers_without_reading() {
    let dir = tree();
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(data.path()).unwrap());
    let wget = dir.path().join("usr/bin/wget");
    let wget_digest = sha2::Sha256::digest(fs::read(&wget).unwrap());
    let parameters = search(json!({"paths": ["/usr/bin"], "sha256": [hex::encode(wget_digest)]}));
    let result = FileModule
        .run(&parameters, &context(dir.path(), Some(store.clone())))
        .unwrap();
    assert_eq!(files(&result, "s1"), ["/usr/bin/wget"]);
    let key = cache_key(&fs::metadata(&wget).unwrap(), false);
    assert!(
        store.cached_hashes(&key).unwrap().is_some(),
        "the first sweep filled the cache"
    );

    // Plant a different digest under the same key: a sweep that trusts the
    // cache reports it, proving it did not read the file.
    let planted = [7u8; 32];
    store
        .cache_hashes(
            key,
            Digests(vec![(HashKind::Sha256, planted.to_vec())]).encode(),
        )
        .unwrap();
    store.flush_hashes().unwrap();
    let parameters = search(json!({"paths": ["/usr/bin"], "sha256": [hex::encode(planted)]}));
    let result = FileModule
        .run(&parameters, &context(dir.path(), Some(store)))
        .unwrap();
    assert_eq!(files(&result, "s1"), ["/usr/bin/wget"]);
}

#[test]
fn invalid_parameters_are_named() {
    let dir = tree();
    for (parameters, fragment) in [
        (json!({"searches": {}}), "no searches"),
        (search(json!({"paths": []})), "at least one path"),
        (
            search(json!({"paths": ["relative"], "names": ["x"]})),
            "not absolute",
        ),
        (
            search(json!({"paths": ["/"], "names": ["("]})),
            "invalid regex",
        ),
        (
            search(json!({"paths": ["/"], "sizes": ["<10x"]})),
            "invalid size",
        ),
        (
            search(json!({"paths": ["/"], "mtimes": ["10d"]})),
            "invalid mtime",
        ),
        (
            search(json!({"paths": ["/"], "names": ["x"], "options": {"mismatch": ["colour"]}})),
            "mismatch",
        ),
        (
            search(json!({"paths": ["/"], "nmaes": ["x"]})),
            "unknown field",
        ),
        (search(json!({"paths": ["/"]})), "no filter"),
    ] {
        let error = FileModule
            .run(&parameters, &context(dir.path(), None))
            .unwrap_err();
        assert!(
            error.to_string().contains(fragment),
            "{parameters}: {error}"
        );
    }
}

#[test]
fn cancellation_stops_a_sweep() {
    let dir = tree();
    let context = context(dir.path(), None);
    context.cancellation.cancel();
    let error = FileModule
        .run(&search(json!({"paths": ["/"], "names": ["."]})), &context)
        .unwrap_err();
    assert!(matches!(error, ModuleError::Cancelled));
}

#[test]
fn the_printer_writes_mig_lines() {
    let dir = tree();
    let result = run_in(
        dir.path(),
        search(json!({"paths": ["/usr/bin"], "names": ["^wget$"], "options": {"matchall": true}})),
    );
    let lines = FileModule.print(&result, true);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("/usr/bin/wget [lastmodified:"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].ends_with(", mode:-rwxr-xr-x, size:28] in search 's1'"),
        "{}",
        lines[0]
    );
    let result = run_in(
        dir.path(),
        search(json!({"paths": ["/usr/bin"], "names": ["^nothing$"]})),
    );
    let lines = FileModule.print(&result, false);
    assert_eq!(
        lines[0],
        "0 match found in search 's1' on checks name='^nothing$'"
    );
    assert!(
        lines[1].starts_with("Statistics: 2 files checked, 0 failed to open, 0 matched, ran in ")
    );
}

/// The seed example, exactly as it is: its hashes are of real 2014
/// backdoors, which no test can recreate, so the planted file's digest is
/// placed in the agent's hash cache (as a previous sweep would have left
/// it). The search then reports the file under both the link and the
/// original path, and nothing else.
#[test]
fn the_seed_example_as_it_is_finds_a_planted_backdoor() {
    let example = include_str!("../../../../docs/examples/linux-backdoor-2014.json");
    let action = mig_proto::Action::from_json(example).unwrap();
    assert_eq!(action.operations[0].module, "filechecker");
    let dir = tree();
    let root = dir.path();
    write(root, "/tmp/.x/kworker", b"stand-in for the backdoor binary");
    symlink("/tmp/.x/kworker", root.join("usr/bin/kworker")).unwrap();
    let planted = root.join("tmp/.x/kworker");
    let listed = "fc48883e129225dc8fc9e340a495fbd834c97f5ff7fa70ab6089ec216a465328";
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(data.path()).unwrap());
    let key = cache_key(&fs::metadata(&planted).unwrap(), false);
    store
        .cache_hashes(
            key,
            Digests(vec![(HashKind::Sha256, hex::decode(listed).unwrap())]).encode(),
        )
        .unwrap();
    store.flush_hashes().unwrap();

    let result = FileModule
        .run(
            &action.operations[0].parameters,
            &context(root, Some(store)),
        )
        .unwrap();
    assert_eq!(
        files(&result, "backdoors"),
        ["/tmp/.x/kworker", "/usr/bin/kworker"]
    );
    let hit = result.elements["backdoors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["file"] == "/tmp/.x/kworker")
        .unwrap();
    assert_eq!(hit["search"]["sha256"], json!([listed]));
}

/// Sweeps that share a pool (the simulator's fleet does) do not wait for
/// each other's walks: pool threads only ever read files ready to be
/// read. A pool thread that waited on one sweep's walker held up every
/// other sweep on the pool until that walk was over.
#[test]
fn a_stalled_walk_does_not_hold_up_another_sweep_on_the_same_pool() {
    let tree = tree();
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap(),
    );
    let mut stalled_context = context(tree.path(), None);
    stalled_context.pool = pool.clone();
    let mut other_context = context(tree.path(), None);
    other_context.pool = pool;
    let wget = sha256_hex(b"wget binary\nlinux-x86-64.so\n");
    let parameters = search(json!({"paths": ["/usr/bin"], "sha256": [wget]}));
    // By name only: nothing for the pool to read, so only the walk stalls.
    let stalled_parameters = search(json!({"paths": ["/usr/bin"], "names": ["^wget$"]}));
    let plan = super::compile(&stalled_parameters, SystemTime::now()).unwrap();
    let stalled_findings = std::sync::Mutex::new(super::Findings::new(&plan));
    std::thread::scope(|scope| {
        // The first sweep's walk stalls on its findings until this is let go.
        let stall = super::lock(&stalled_findings);
        let stalled =
            scope.spawn(|| super::walk::sweep(&plan, &stalled_context, &stalled_findings));
        // Not a measurement: time for the first sweep to be well into its walk.
        std::thread::sleep(Duration::from_millis(200));
        let (finished, other) = std::sync::mpsc::channel();
        let (parameters, other_context) = (&parameters, &other_context);
        scope.spawn(move || {
            let _ = finished.send(FileModule.run(parameters, other_context));
        });
        let other = other.recv_timeout(Duration::from_secs(30));
        drop(stall);
        let other = other
            .expect("the second sweep finished while the first walk was stalled")
            .unwrap();
        assert_eq!(files(&other, "s1"), ["/usr/bin/wget"]);
        stalled.join().unwrap().unwrap();
    });
    let stalled = super::lock(&stalled_findings);
    assert_eq!(stalled.files_count, 2);
    let hits = &stalled.check_hits[0][0];
    assert_eq!(hits.len(), 1);
    assert_eq!(stalled.files[hits[0]].logical, "/usr/bin/wget");
}

#[test]
fn each_entry_has_the_exact_shape_mig_gave_it() {
    let dir = tree();
    let root = dir.path();
    let wget = fs::read(root.join("usr/bin/wget")).unwrap();
    let missing = sha256_hex(b"on no host");
    let parameters = json!({"paths": ["/usr/bin"], "sha256": [sha256_hex(&wget), missing],
                            "options": {"returnsha256": true}});
    let result = run_in(root, search(parameters));
    let entries = result.elements["s1"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "one entry per check: {entries:?}");
    let options = json!({"maxdepth": 0, "matchall": false, "macroal": false,
                         "matchlimit": 0, "maxerrors": 0, "returnsha256": true});

    let mut hit = entries[0].clone();
    let lastmodified = hit["fileinfo"]["lastmodified"].take();
    assert!(
        lastmodified.as_str().is_some_and(|text| !text.is_empty()),
        "{lastmodified}"
    );
    assert_eq!(
        hit,
        json!({"file": "/usr/bin/wget",
               "search": {"paths": ["/usr/bin"], "sha256": [sha256_hex(&wget)], "options": options},
               "fileinfo": {"size": wget.len(), "mode": "-rwxr-xr-x", "lastmodified": null,
                            "sha256": sha256_hex(&wget)}})
    );
    assert_eq!(
        entries[1],
        json!({"file": "",
               "search": {"paths": ["/usr/bin"], "sha256": [missing], "options": options},
               "fileinfo": {"size": 0, "mode": "", "lastmodified": ""}})
    );
}
