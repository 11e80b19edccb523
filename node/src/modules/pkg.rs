//! `pkg`: installed packages by name and version.
//!
//! Parameters (MIG's):
//!
//! ```json
//! {"pkgmatch": {"matches": ["^openssl$", "^libssl"]},   // regexes on the name
//!  "vermatch": "^1\\.0\\."}                            // optional; "!re" inverts
//! ```
//!
//! Sources, inside the root prefix: dpkg's status file
//! (`/var/lib/dpkg/status`, installed packages only), apk's database
//! (`/lib/apk/db/installed`), and the rpm database (`/var/lib/rpm` or
//! `/usr/lib/sysimage/rpm`), read through the `rpm` command when present.
//!
//! Result: `elements` is `{"packages": [{name, version, type, arch}]}`;
//! `statistics` is `{examined, execruntime}`.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mig_proto::ModuleResult;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::procfs::read_bounded;
use super::{Module, ModuleContext, ModuleError, go_duration, parse_parameters, under_root};

pub struct Pkg;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Parameters {
    pkgmatch: PackageMatch,
    #[serde(default)]
    vermatch: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackageMatch {
    matches: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Package {
    name: String,
    version: String,
    #[serde(rename = "type")]
    kind: &'static str,
    arch: String,
}

/// Package databases larger than this are not read.
const MAX_DATABASE_BYTES: u64 = 256 * 1024 * 1024;

/// Stanzas separated by blank lines, as dpkg and apk write them; `field`
/// picks a value by its prefix.
fn stanzas(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.split("\n\n")
        .map(|stanza| stanza.lines().collect::<Vec<_>>())
        .filter(|lines| !lines.is_empty())
}

fn field<'a>(lines: &[&'a str], prefix: &str) -> Option<&'a str> {
    lines
        .iter()
        .find_map(|line| line.strip_prefix(prefix))
        .map(str::trim)
}

fn dpkg_packages(root: &Path) -> Result<Vec<Package>, String> {
    let text = read_bounded(
        &under_root(root, Path::new("/var/lib/dpkg/status")),
        MAX_DATABASE_BYTES,
    )
    .map_err(|error| error.to_string())?;
    Ok(stanzas(&text)
        .filter(|lines| {
            field(lines, "Status:")
                .is_some_and(|status| status.split_whitespace().nth(2) == Some("installed"))
        })
        .filter_map(|lines| {
            Some(Package {
                name: field(&lines, "Package:")?.to_owned(),
                version: field(&lines, "Version:").unwrap_or("").to_owned(),
                kind: "dpkg",
                arch: field(&lines, "Architecture:").unwrap_or("").to_owned(),
            })
        })
        .collect())
}

fn apk_packages(root: &Path) -> Result<Vec<Package>, String> {
    let text = read_bounded(
        &under_root(root, Path::new("/lib/apk/db/installed")),
        MAX_DATABASE_BYTES,
    )
    .map_err(|error| error.to_string())?;
    Ok(stanzas(&text)
        .filter_map(|lines| {
            Some(Package {
                name: field(&lines, "P:")?.to_owned(),
                version: field(&lines, "V:").unwrap_or("").to_owned(),
                kind: "apk",
                arch: field(&lines, "A:").unwrap_or("").to_owned(),
            })
        })
        .collect())
}

/// Runs `rpm -qa` against the root, within the operation's deadline.
fn rpm_packages(root: &Path, context: &ModuleContext) -> Result<Vec<Package>, String> {
    let mut child = Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args([
            "-qa",
            "--queryformat",
            "%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\t%{ARCH}\\n",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| {
            format!("an rpm database is present but the rpm command cannot run: {error}")
        })?;
    let mut stdout = child.stdout.take().ok_or("rpm gave no output")?;
    let reader = std::thread::spawn(move || {
        let mut output = Vec::new();
        let _ = (&mut stdout)
            .take(MAX_DATABASE_BYTES)
            .read_to_end(&mut output);
        output
    });
    loop {
        if let Some(status) = child.try_wait().map_err(|error| error.to_string())? {
            if !status.success() {
                return Err(format!("rpm -qa failed: {status}"));
            }
            break;
        }
        if context.cancellation.check().is_err() {
            let _ = child.kill();
            let _ = child.wait();
            return Err("rpm -qa did not finish in time".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = reader.join().map_err(|_| "reading rpm's output failed")?;
    Ok(String::from_utf8_lossy(&output)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let name = fields.next()?.to_owned();
            let version = fields.next()?.trim_start_matches("0:").to_owned();
            let arch = fields.next().unwrap_or("").to_owned();
            Some(Package {
                name,
                version,
                kind: "rpm",
                arch,
            })
        })
        .collect())
}

fn compile(source: &str) -> Result<regex::Regex, ModuleError> {
    regex::RegexBuilder::new(source)
        .size_limit(1 << 20)
        .build()
        .map_err(|error| {
            ModuleError::InvalidParameters(format!("invalid regex '{source}': {error}"))
        })
}

/// What to look for: package name regexes, and a version regex (negated
/// when it starts with `!`).
struct Query {
    names: Vec<regex::Regex>,
    version: Option<(regex::Regex, bool)>,
}

fn query(parameters: &Json) -> Result<Query, ModuleError> {
    let parameters: Parameters = parse_parameters(parameters)?;
    if parameters.pkgmatch.matches.is_empty() {
        return Err(ModuleError::InvalidParameters(
            "pkgmatch.matches needs at least one regex".into(),
        ));
    }
    let names = parameters
        .pkgmatch
        .matches
        .iter()
        .map(|source| compile(source))
        .collect::<Result<Vec<_>, _>>()?;
    let version = match parameters.vermatch.as_deref() {
        Some(source) if source.len() > 1 && source.starts_with('!') => {
            Some((compile(&source[1..])?, true))
        }
        Some(source) if !source.is_empty() => Some((compile(source)?, false)),
        _ => None,
    };
    Ok(Query { names, version })
}

impl Module for Pkg {
    fn name(&self) -> &'static str {
        "pkg"
    }

    fn check(&self, parameters: &Json) -> Result<(), ModuleError> {
        query(parameters).map(drop)
    }

    fn run(&self, parameters: &Json, context: &ModuleContext) -> Result<ModuleResult, ModuleError> {
        let started = Instant::now();
        let Query { names, version } = query(parameters)?;
        let root = &context.root;
        let mut errors = Vec::new();
        let mut installed = Vec::new();
        let mut found_database = false;
        for (marker, read) in [
            (
                "/var/lib/dpkg/status",
                dpkg_packages as fn(&Path) -> Result<Vec<Package>, String>,
            ),
            ("/lib/apk/db/installed", apk_packages),
        ] {
            if under_root(root, Path::new(marker)).exists() {
                found_database = true;
                match read(root) {
                    Ok(packages) => installed.extend(packages),
                    Err(error) => errors.push(format!("{marker}: {error}")),
                }
            }
        }
        context.cancellation.check()?;
        if ["/var/lib/rpm", "/usr/lib/sysimage/rpm"]
            .iter()
            .any(|marker| under_root(root, Path::new(marker)).is_dir())
        {
            found_database = true;
            match rpm_packages(root, context) {
                Ok(packages) => installed.extend(packages),
                Err(error) => errors.push(error),
            }
        }
        if !found_database {
            errors.push("no package database found (dpkg, apk or rpm)".into());
        }
        let examined = installed.len();
        let mut packages: Vec<Package> = installed
            .into_iter()
            .filter(|package| names.iter().any(|regex| regex.is_match(&package.name)))
            .filter(|package| {
                version
                    .as_ref()
                    .is_none_or(|(regex, inverted)| regex.is_match(&package.version) != *inverted)
            })
            .collect();
        packages.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        Ok(ModuleResult {
            foundanything: !packages.is_empty(),
            success: true,
            elements: json!({"packages": packages}),
            statistics: json!({"examined": examined, "execruntime": go_duration(started.elapsed())}),
            errors,
        })
    }

    fn print(&self, result: &ModuleResult, found_only: bool) -> Vec<String> {
        let mut lines: Vec<String> = result.elements["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|package| {
                format!(
                    "pkgmatch name={} version={} type={} arch={}",
                    package["name"].as_str().unwrap_or(""),
                    package["version"].as_str().unwrap_or(""),
                    package["type"].as_str().unwrap_or(""),
                    package["arch"].as_str().unwrap_or("")
                )
            })
            .collect();
        if !found_only {
            if lines.is_empty() {
                lines.push("no matching package".into());
            }
            lines.extend(result.errors.iter().map(|error| format!("error: {error}")));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{context, plant};

    fn run(root: &Path, parameters: Json) -> Result<ModuleResult, ModuleError> {
        Pkg.run(&parameters, &context(root))
    }

    const DPKG_STATUS: &str = "Package: openssl\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nVersion: 3.0.11-1~deb12u2\nDescription: Secure Sockets Layer toolkit\n multi-line description\n\nPackage: libssl1.0.0\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0.2g-1ubuntu4\n\nPackage: removed-thing\nStatus: deinstall ok config-files\nArchitecture: all\nVersion: 1.0\n";

    #[test]
    fn dpkg_packages_by_name_and_version() {
        let dir = tempfile::tempdir().unwrap();
        plant(dir.path(), "/var/lib/dpkg/status", DPKG_STATUS);
        let result = run(dir.path(), json!({"pkgmatch": {"matches": ["ssl"]}})).unwrap();
        let names: Vec<&str> = result.elements["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["libssl1.0.0", "openssl"]);
        let result = run(
            dir.path(),
            json!({"pkgmatch": {"matches": ["ssl"]}, "vermatch": "^1\\.0\\."}),
        )
        .unwrap();
        assert_eq!(
            Pkg.print(&result, true),
            ["pkgmatch name=libssl1.0.0 version=1.0.2g-1ubuntu4 type=dpkg arch=amd64"]
        );
        let result = run(
            dir.path(),
            json!({"pkgmatch": {"matches": ["ssl"]}, "vermatch": "!^1\\.0\\."}),
        )
        .unwrap();
        assert_eq!(result.elements["packages"][0]["name"], "openssl");
        let result = run(dir.path(), json!({"pkgmatch": {"matches": ["removed"]}})).unwrap();
        assert!(!result.foundanything, "only installed packages count");
        assert_eq!(result.statistics["examined"], 2);
    }

    #[test]
    fn apk_packages() {
        let dir = tempfile::tempdir().unwrap();
        plant(
            dir.path(),
            "/lib/apk/db/installed",
            "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\n\nP:busybox\nV:1.36.1-r5\nA:x86_64\n",
        );
        let result = run(dir.path(), json!({"pkgmatch": {"matches": ["^busybox$"]}})).unwrap();
        assert_eq!(
            result.elements["packages"],
            json!([{"name": "busybox", "version": "1.36.1-r5", "type": "apk", "arch": "x86_64"}])
        );
    }

    #[test]
    fn no_database_and_bad_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let result = run(dir.path(), json!({"pkgmatch": {"matches": ["x"]}})).unwrap();
        assert!(result.errors[0].contains("no package database"));
        assert!(run(dir.path(), json!({"pkgmatch": {"matches": []}})).is_err());
        assert!(run(dir.path(), json!({"pkgmatch": {"matches": ["("]}})).is_err());
        assert!(run(dir.path(), json!({"name": "x"})).is_err());
    }
}
