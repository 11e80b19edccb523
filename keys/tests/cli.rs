//! The `mig-keys` command as an investigator uses it: generate, sign,
//! co-sign, verify; and each way verification fails, with its own message
//! and a non-zero exit.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/examples/linux-backdoor-2014.json"
);

fn mig_keys(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mig-keys"))
        .args(args)
        .env_remove("MIG_KEY_PASSPHRASE")
        .output()
        .expect("mig-keys runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A plain key pair named `name`; returns the secret key's path.
    fn key(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        let output = mig_keys(&[
            "generate",
            "--out",
            path_str(&path),
            "--no-passphrase",
            "--comment",
            name,
        ]);
        assert!(output.status.success(), "{}", text(&output));
        path
    }

    fn sign(&self, key: &Path, input: &Path, output_name: &str) -> PathBuf {
        let out = self.path(output_name);
        let output = mig_keys(&[
            "sign",
            "--key",
            path_str(key),
            path_str(input),
            "-o",
            path_str(&out),
        ]);
        assert!(output.status.success(), "{}", text(&output));
        out
    }
}

fn pub_of(key: &Path) -> String {
    format!("{}.pub", key.display())
}

#[test]
fn generate_sign_and_verify_the_seed_example() {
    let work = Workspace::new();
    let alice = work.key("alice");
    let signed = work.sign(&alice, Path::new(EXAMPLE), "signed.json");
    let output = mig_keys(&["verify", "--trust", &pub_of(&alice), path_str(&signed)]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let printed = text(&output);
    assert!(
        printed.contains("VALID") && printed.contains("verified  alice"),
        "{printed}"
    );

    let output = mig_keys(&[
        "verify",
        "--json",
        "--trust",
        &pub_of(&alice),
        path_str(&signed),
    ]);
    let verdict: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verdict["outcome"]["valid"], true);
    assert_eq!(verdict["signers"][0]["status"], "verified");

    let output = mig_keys(&["fingerprint", &pub_of(&alice)]);
    let fingerprint = String::from_utf8(output.stdout).unwrap();
    assert_eq!(fingerprint.trim().len(), 40);
    assert!(
        text(&mig_keys(&[
            "verify",
            "--trust",
            &pub_of(&alice),
            path_str(&signed)
        ]))
        .contains(fingerprint.trim())
    );
}

#[test]
fn a_changed_target_is_refused() {
    let work = Workspace::new();
    let alice = work.key("alice");
    let signed = work.sign(&alice, Path::new(EXAMPLE), "signed.json");
    let changed = fs::read_to_string(&signed)
        .unwrap()
        .replace("agents.os = 'linux'", "agents.os = 'linuz'");
    fs::write(&signed, changed).unwrap();
    let output = mig_keys(&["verify", "--trust", &pub_of(&alice), path_str(&signed)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("INVALID: bad signature by key"),
        "{}",
        text(&output)
    );
}

#[test]
fn an_untrusted_key_is_refused() {
    let work = Workspace::new();
    let alice = work.key("alice");
    let mallory = work.key("mallory");
    let signed = work.sign(&mallory, Path::new(EXAMPLE), "signed.json");
    let output = mig_keys(&["verify", "--trust", &pub_of(&alice), path_str(&signed)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("INVALID: signed by unknown key"),
        "{}",
        text(&output)
    );
}

#[test]
fn an_expired_window_is_refused() {
    let work = Workspace::new();
    let alice = work.key("alice");
    let signed = work.sign(&alice, Path::new(EXAMPLE), "signed.json");
    let output = mig_keys(&[
        "verify",
        "--trust",
        &pub_of(&alice),
        "--at",
        "2099-01-01T00:00:00Z",
        path_str(&signed),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("INVALID: expired at"),
        "{}",
        text(&output)
    );

    let output = mig_keys(&[
        "verify",
        "--trust",
        &pub_of(&alice),
        "--at",
        "2001-01-01T00:00:00Z",
        path_str(&signed),
    ]);
    assert!(
        text(&output).contains("INVALID: not yet valid"),
        "{}",
        text(&output)
    );

    let long = work.path("long.json");
    let output = mig_keys(&[
        "sign",
        "--key",
        path_str(&alice),
        "-e",
        "30d",
        EXAMPLE,
        "-o",
        path_str(&long),
    ]);
    assert!(output.status.success());
    let output = mig_keys(&["verify", "--trust", &pub_of(&alice), path_str(&long)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("is longer than the 7d allowed"),
        "{}",
        text(&output)
    );
}

#[test]
fn the_same_key_cannot_count_twice() {
    let work = Workspace::new();
    let alice = work.key("alice");
    let signed = work.sign(&alice, Path::new(EXAMPLE), "signed.json");

    let output = mig_keys(&["sign", "--key", path_str(&alice), path_str(&signed)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).contains("has already signed"),
        "{}",
        text(&output)
    );

    let mut action: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&signed).unwrap()).unwrap();
    let first = action["signatures"][0].clone();
    action["signatures"].as_array_mut().unwrap().push(first);
    fs::write(&signed, action.to_string()).unwrap();
    let output = mig_keys(&["verify", "--trust", &pub_of(&alice), path_str(&signed)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("signed more than once"),
        "{}",
        text(&output)
    );
}

#[test]
fn two_investigators_reach_the_acl_weight_together() {
    let work = Workspace::new();
    let alice = work.key("alice");
    let bob = work.key("bob");
    let fingerprint = |key: &Path| {
        String::from_utf8(mig_keys(&["fingerprint", &pub_of(key)]).stdout)
            .unwrap()
            .trim()
            .to_owned()
    };
    let acl = work.path("acl.json");
    fs::write(
        &acl,
        format!(
            r#"{{"default": {{"minimumweight": 2, "investigators": {{
                "alice": {{"fingerprint": "{}", "weight": 1}},
                "bob": {{"fingerprint": "{}", "weight": 1}}}}}}}}"#,
            fingerprint(&alice),
            fingerprint(&bob)
        ),
    )
    .unwrap();
    let once = work.sign(&alice, Path::new(EXAMPLE), "once.json");
    let verify = |file: &Path| {
        mig_keys(&[
            "verify",
            "--trust",
            &pub_of(&alice),
            "--trust",
            &pub_of(&bob),
            "--acl",
            path_str(&acl),
            path_str(file),
        ])
    };
    let output = verify(&once);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("have 1, need 2"),
        "{}",
        text(&output)
    );

    let twice = work.sign(&bob, &once, "twice.json");
    let output = verify(&twice);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}

#[test]
fn encrypted_keys_need_their_passphrase() {
    let work = Workspace::new();
    let key = work.path("sealed");
    let passphrase = work.path("passphrase");
    fs::write(&passphrase, "correct horse battery staple\n").unwrap();
    let output = mig_keys(&[
        "generate",
        "--out",
        path_str(&key),
        "--passphrase-file",
        path_str(&passphrase),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(fs::read_to_string(&key).unwrap().contains("argon2id"));

    let output = mig_keys(&["sign", "--key", path_str(&key), EXAMPLE]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("is encrypted"), "{}", text(&output));

    let wrong = work.path("wrong");
    fs::write(&wrong, "nope\n").unwrap();
    let output = mig_keys(&[
        "sign",
        "--key",
        path_str(&key),
        "--passphrase-file",
        path_str(&wrong),
        EXAMPLE,
    ]);
    assert!(
        text(&output).contains("wrong passphrase"),
        "{}",
        text(&output)
    );

    let output = mig_keys(&[
        "sign",
        "--key",
        path_str(&key),
        "--passphrase-file",
        path_str(&passphrase),
        EXAMPLE,
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let signed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(signed["signatures"].as_array().unwrap().len(), 1);
}

#[cfg(unix)]
#[test]
fn a_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let work = Workspace::new();
    let key = work.key("alice");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    let output = mig_keys(&["sign", "--key", path_str(&key), EXAMPLE]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("chmod 600"), "{}", text(&output));
}

#[test]
fn the_demo_runs() {
    let output = mig_keys(&["demo"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("demo ok"));
}
