//! `sshkey`: an inventory of SSH keys: authorized keys, public keys and
//! private keys, with their MD5 and SHA-256 fingerprints and whether a
//! private key is encrypted. Never returns key material.
//!
//! Parameters (MIG's):
//!
//! ```json
//! {"paths": ["/root", "/home"],   // the default
//!  "maxdepth": 8}                 // directory levels below each path, 0 to 1000
//! ```
//!
//! Result: `elements` is `{"keys": [{path, type ("authorizedkey", "public"
//! or "private"), keytype, fingerprint_md5, fingerprint_sha256,
//! encrypted?}]}`; `statistics` is `{filesexamined, keysfound, exectime}`.
//! A PEM private key's fingerprint comes from the `.pub` beside it when
//! there is one (PEM keys carry no public half); OpenSSH-format private
//! keys carry theirs, encrypted or not.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use mig_proto::ModuleResult;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use sha2::Digest;

use super::{
    Module, ModuleContext, ModuleError, go_duration, logical_under_root, parse_parameters,
    under_root,
};

pub struct SshKey;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Parameters {
    #[serde(default = "default_paths")]
    paths: Vec<String>,
    #[serde(default = "default_depth")]
    maxdepth: u64,
}

fn default_paths() -> Vec<String> {
    vec!["/root".into(), "/home".into()]
}

fn default_depth() -> u64 {
    8
}

/// Key files are small; anything bigger is not a key.
const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;
const KEY_TYPES: [&str; 9] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-ed448",
];

#[derive(Debug, Serialize)]
struct FoundKey {
    path: String,
    #[serde(rename = "type")]
    kind: &'static str,
    keytype: String,
    fingerprint_md5: String,
    fingerprint_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    encrypted: Option<bool>,
}

/// The fingerprints `ssh-keygen -l` prints, from a public key blob.
fn fingerprints(blob: &[u8]) -> (String, String) {
    let md5 = md5::Md5::digest(blob)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let sha256 = format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(sha2::Sha256::digest(blob))
    );
    (md5, sha256)
}

/// A length-prefixed string of the SSH wire format.
fn ssh_string<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let length = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let value = bytes.get(4..4 + length)?;
    *bytes = &bytes[4 + length..];
    Some(value)
}

/// Public keys in `authorized_keys` or `.pub` lines: `[options] type
/// base64 [comment]`.
fn public_keys_in(text: &str) -> Vec<(String, Vec<u8>)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.windows(2).find_map(|pair| {
                if !KEY_TYPES.contains(&pair[0]) {
                    return None;
                }
                let blob = STANDARD.decode(pair[1]).ok()?;
                let mut rest = blob.as_slice();
                (ssh_string(&mut rest)? == pair[0].as_bytes())
                    .then(|| (pair[0].to_owned(), blob.clone()))
            })
        })
        .collect()
}

/// What an OpenSSH-format private key says about itself: its public blob
/// and whether the private part is encrypted.
fn openssh_private_key(text: &str) -> Option<(String, Vec<u8>, bool)> {
    let body: String = text
        .lines()
        .skip_while(|line| !line.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    let binary = STANDARD.decode(body.trim()).ok()?;
    let mut rest = binary.strip_prefix(b"openssh-key-v1\0")?;
    let cipher = ssh_string(&mut rest)?;
    ssh_string(&mut rest)?; // kdf name
    ssh_string(&mut rest)?; // kdf options
    rest = rest.get(4..)?; // number of keys
    let blob = ssh_string(&mut rest)?.to_vec();
    let mut blob_rest = blob.as_slice();
    let keytype = String::from_utf8_lossy(ssh_string(&mut blob_rest)?).into_owned();
    Some((keytype, blob, cipher != b"none"))
}

fn inspect_file(host: &Path, logical: &str, keys: &mut Vec<FoundKey>, errors: &mut Vec<String>) {
    let name = host.file_name().unwrap_or_default().to_string_lossy();
    let Ok(file) = std::fs::File::open(host) else {
        errors.push(format!("{logical}: cannot open"));
        return;
    };
    let mut bytes = Vec::new();
    if file
        .take(MAX_KEY_FILE_BYTES)
        .read_to_end(&mut bytes)
        .is_err()
    {
        errors.push(format!("{logical}: cannot read"));
        return;
    }
    let text = String::from_utf8_lossy(&bytes);
    let is_authorized = name == "authorized_keys" || name == "authorized_keys2";
    if is_authorized || name.ends_with(".pub") {
        for (keytype, blob) in public_keys_in(&text) {
            let (md5, sha256) = fingerprints(&blob);
            keys.push(FoundKey {
                path: logical.to_owned(),
                kind: if is_authorized {
                    "authorizedkey"
                } else {
                    "public"
                },
                keytype,
                fingerprint_md5: md5,
                fingerprint_sha256: sha256,
                encrypted: None,
            });
        }
        return;
    }
    let head = text.trim_start();
    if !(head.starts_with("-----BEGIN ")
        && head
            .lines()
            .next()
            .is_some_and(|line| line.contains("PRIVATE KEY")))
    {
        return;
    }
    if let Some((keytype, blob, encrypted)) = openssh_private_key(head) {
        let (md5, sha256) = fingerprints(&blob);
        keys.push(FoundKey {
            path: logical.to_owned(),
            kind: "private",
            keytype,
            fingerprint_md5: md5,
            fingerprint_sha256: sha256,
            encrypted: Some(encrypted),
        });
        return;
    }
    // PEM: the type is in the header; the public half, if anywhere, beside it.
    let header = head.lines().next().unwrap_or("");
    let keytype = match header {
        line if line.contains("RSA") => "ssh-rsa",
        line if line.contains("DSA") => "ssh-dss",
        line if line.contains("EC ") => "ecdsa",
        _ => "unknown",
    };
    let encrypted = header.contains("ENCRYPTED") || head.contains("Proc-Type: 4,ENCRYPTED");
    let mut public_path = host.as_os_str().to_owned();
    public_path.push(".pub");
    let public = std::fs::read_to_string(&public_path)
        .ok()
        .and_then(|text| public_keys_in(&text).into_iter().next());
    let (md5, sha256) = public
        .as_ref()
        .map(|(_, blob)| fingerprints(blob))
        .unwrap_or_default();
    keys.push(FoundKey {
        path: logical.to_owned(),
        kind: "private",
        keytype: public.map_or_else(|| keytype.to_owned(), |(keytype, _)| keytype),
        fingerprint_md5: md5,
        fingerprint_sha256: sha256,
        encrypted: Some(encrypted),
    });
}

/// Parses and checks the parameters: depth bounded, paths absolute and
/// without `..`.
fn checked_parameters(parameters: &Json) -> Result<Parameters, ModuleError> {
    let parameters: Parameters = parse_parameters(parameters)?;
    if parameters.maxdepth > 1000 {
        return Err(ModuleError::InvalidParameters(
            "maxdepth must be 0 to 1000".into(),
        ));
    }
    for path in &parameters.paths {
        if !path.starts_with('/') || path.split('/').any(|component| component == "..") {
            return Err(ModuleError::InvalidParameters(format!(
                "path '{path}' must be absolute, without '..'"
            )));
        }
    }
    Ok(parameters)
}

impl Module for SshKey {
    fn name(&self) -> &'static str {
        "sshkey"
    }

    fn check(&self, parameters: &Json) -> Result<(), ModuleError> {
        checked_parameters(parameters).map(drop)
    }

    fn run(&self, parameters: &Json, context: &ModuleContext) -> Result<ModuleResult, ModuleError> {
        let started = Instant::now();
        let parameters = checked_parameters(parameters)?;
        let mut keys = Vec::new();
        let mut errors = Vec::new();
        let mut examined = 0u64;
        for path in &parameters.paths {
            let host = under_root(&context.root, Path::new(path));
            if !host.exists() {
                continue;
            }
            let depth = usize::try_from(parameters.maxdepth).unwrap_or(usize::MAX);
            for entry in walkdir::WalkDir::new(&host)
                .follow_links(false)
                .max_depth(depth)
            {
                context.cancellation.check()?;
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(error) => {
                        errors.push(error.to_string());
                        continue;
                    }
                };
                if !entry.file_type().is_file() {
                    continue;
                }
                examined += 1;
                let logical = logical_under_root(&context.root, entry.path())
                    .display()
                    .to_string();
                inspect_file(entry.path(), &logical, &mut keys, &mut errors);
            }
        }
        keys.sort_by(|a, b| {
            (&a.path, &a.fingerprint_sha256).cmp(&(&b.path, &b.fingerprint_sha256))
        });
        let found = keys.len();
        errors.truncate(100);
        Ok(ModuleResult {
            foundanything: found > 0,
            success: true,
            elements: json!({"keys": keys}),
            statistics: json!({"filesexamined": examined, "keysfound": found, "exectime": go_duration(started.elapsed())}),
            errors,
        })
    }

    fn print(&self, result: &ModuleResult, found_only: bool) -> Vec<String> {
        let mut lines: Vec<String> = result.elements["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|key| {
                let mut line = format!(
                    "{} {} {} {} {}",
                    key["path"].as_str().unwrap_or(""),
                    key["type"].as_str().unwrap_or(""),
                    key["keytype"].as_str().unwrap_or(""),
                    key["fingerprint_sha256"].as_str().unwrap_or(""),
                    key["fingerprint_md5"].as_str().unwrap_or("")
                );
                if let Some(encrypted) = key["encrypted"].as_bool() {
                    line.push_str(if encrypted {
                        " encrypted"
                    } else {
                        " unencrypted"
                    });
                }
                line
            })
            .collect();
        if !found_only && lines.is_empty() {
            lines.push("no key found".into());
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{context, plant};

    // Throwaway keys made for this test with ssh-keygen; their
    // fingerprints are what `ssh-keygen -l` printed.
    const PUBLIC: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL24LgsYN6FHkJLQof+4p93Xq1WKunXTF1sJq3lUdKZr bob@laptop";
    const PUBLIC_SHA256: &str = "SHA256:cnVKK9fgXZQzKfhfSM7mqZP0xWABCLLK9has4SqazbI";
    const PUBLIC_MD5: &str = "82:11:87:4c:7b:1d:c9:16:4d:1f:de:47:6d:8b:e9:09";
    const PRIVATE_PLAIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACC9uC4LGDehR5CS0KH/uKfd16tVirp10xdbCat5VHSmawAAAJBpO6TgaTuk
4AAAAAtzc2gtZWQyNTUxOQAAACC9uC4LGDehR5CS0KH/uKfd16tVirp10xdbCat5VHSmaw
AAAEBGiiKEgBZMLGSi20OytT6WTOTX+vNB4/8oEK3Uhxbtqb24LgsYN6FHkJLQof+4p93X
q1WKunXTF1sJq3lUdKZrAAAACmJvYkBsYXB0b3ABAgM=
-----END OPENSSH PRIVATE KEY-----
";
    const PRIVATE_ENCRYPTED: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABABquURNL
gSS1Hip5KfV9f0AAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAINA/KODZke1p7ebg
8WONv0rd4D87R0Le0IpwFkDB1GoYAAAAkE1l4DKBNv2ppKAge6/akK+rixmS2Q21NknHFF
tmB5PDfU+fs/4+sDzIi0zhfCE54afzMmq+ljdLPkEWprPlS7dpOLJd2IhdMQ2Gn9sEdBo1
oApnrx05B4iOhQpOTqtjVcbxLgL9ep2vAT5uT0ExDQJMTgHYXL4eVK3C4NjMZToDERCYO2
f3NmnjZ/LN3r6lJw==
-----END OPENSSH PRIVATE KEY-----
";
    const ENCRYPTED_SHA256: &str = "SHA256:ktyej4vk/0wpursQiDH1bxKdu8dzw4GKxydn/dWn2N0";

    fn run(root: &Path, parameters: Json) -> ModuleResult {
        SshKey.run(&parameters, &context(root)).unwrap()
    }

    #[test]
    fn finds_authorized_public_and_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        plant(
            root,
            "/home/bob/.ssh/authorized_keys",
            format!("# comment\nfrom=\"10.0.0.0/8\",no-pty {PUBLIC}\n\ngarbage line\n"),
        );
        plant(root, "/home/bob/.ssh/id_ed25519", PRIVATE_PLAIN);
        plant(root, "/home/bob/.ssh/id_ed25519.pub", format!("{PUBLIC}\n"));
        plant(root, "/root/.ssh/id_work", PRIVATE_ENCRYPTED);
        plant(root, "/home/bob/notes.txt", "nothing here\n");
        let result = run(root, json!({}));
        let keys = result.elements["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 4, "{keys:?}");
        let by_path = |path: &str| keys.iter().find(|key| key["path"] == path).unwrap();
        let authorized = by_path("/home/bob/.ssh/authorized_keys");
        assert_eq!(authorized["type"], "authorizedkey");
        assert_eq!(authorized["fingerprint_sha256"], PUBLIC_SHA256);
        assert_eq!(authorized["fingerprint_md5"], PUBLIC_MD5);
        let private = by_path("/home/bob/.ssh/id_ed25519");
        assert_eq!(
            private["fingerprint_sha256"], PUBLIC_SHA256,
            "the private key's public half"
        );
        assert_eq!(private["encrypted"], false);
        let encrypted = by_path("/root/.ssh/id_work");
        assert_eq!(encrypted["encrypted"], true);
        assert_eq!(encrypted["fingerprint_sha256"], ENCRYPTED_SHA256);
        assert_eq!(encrypted["keytype"], "ssh-ed25519");
        let text = serde_json::to_string(&result).unwrap();
        assert!(
            !text.contains("AAAAC3NzaC1lZDI1NTE5AAAAIL24"),
            "no key material in results"
        );
        assert_eq!(result.statistics["keysfound"], 4);
    }

    #[test]
    fn pem_keys_and_depth() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        plant(
            root,
            "/srv/deep/a/b/c/id_rsa",
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        );
        let shallow = run(root, json!({"paths": ["/srv"], "maxdepth": 3}));
        assert!(!shallow.foundanything);
        let deep = run(root, json!({"paths": ["/srv"], "maxdepth": 5}));
        let key = &deep.elements["keys"][0];
        assert_eq!(
            (key["keytype"].as_str(), key["encrypted"].as_bool()),
            (Some("ssh-rsa"), Some(true))
        );
        assert_eq!(key["fingerprint_sha256"], "");
    }
}
