//! The console's roster: every agent it has heard from, with its
//! attributes and when it was last heard from, in the console's own redb
//! file (`console.redb` in the data directory). A census (`mig agents`)
//! asks every agent; every launch's answers refresh it too.
//!
//! The console evaluates targets over the roster to say how many agents it
//! expects before it launches, and to name the ones that stayed away.

use std::collections::BTreeMap;
use std::path::Path;

use mig_proto::{AgentAttributes, AgentContext, NoHistory, Target};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

/// Peer id -> [`RosterEntry`] as JSON.
const ROSTER: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("roster");

/// Agents kept at most; past it, the ones heard from longest ago go.
pub const MAX_ROSTER_AGENTS: usize = 200_000;

/// Agents heard from within this long are expected to answer.
pub const FRESH_SECONDS: i64 = 24 * 3600;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RosterEntry {
    pub peer: String,
    pub attributes: AgentAttributes,
    /// Unix seconds.
    pub last_seen: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("the console's roster: {0}")]
pub struct RosterError(String);

fn error(problem: impl std::fmt::Display) -> RosterError {
    RosterError(problem.to_string())
}

pub struct Roster {
    database: Database,
}

impl Roster {
    pub fn open(data_dir: &Path) -> Result<Self, RosterError> {
        std::fs::create_dir_all(data_dir).map_err(error)?;
        let path = data_dir.join("console.redb");
        let database = Database::create(&path)
            .map_err(|problem| error(format!("{}: {problem}", path.display())))?;
        let transaction = database.begin_write().map_err(error)?;
        transaction.open_table(ROSTER).map_err(error)?;
        transaction.commit().map_err(error)?;
        Ok(Self { database })
    }

    /// Records agents heard from at `now` (one transaction), then trims the
    /// roster to its limit.
    pub fn record(
        &self,
        agents: &[(String, AgentAttributes)],
        now: i64,
    ) -> Result<(), RosterError> {
        let transaction = self.database.begin_write().map_err(error)?;
        {
            let mut table = transaction.open_table(ROSTER).map_err(error)?;
            for (peer, attributes) in agents {
                let entry = RosterEntry {
                    peer: peer.clone(),
                    attributes: attributes.clone(),
                    last_seen: now,
                };
                let bytes = serde_json::to_vec(&entry).map_err(error)?;
                table
                    .insert(peer.as_str(), bytes.as_slice())
                    .map_err(error)?;
            }
            let count = usize::try_from(table.len().map_err(error)?).unwrap_or(usize::MAX);
            if count > MAX_ROSTER_AGENTS {
                let mut by_age: Vec<(i64, String)> = table
                    .iter()
                    .map_err(error)?
                    .filter_map(Result::ok)
                    .filter_map(|(key, value)| {
                        let entry: RosterEntry = serde_json::from_slice(value.value()).ok()?;
                        Some((entry.last_seen, key.value().to_owned()))
                    })
                    .collect();
                by_age.sort();
                for (_, peer) in by_age.iter().take(count - MAX_ROSTER_AGENTS) {
                    table.remove(peer.as_str()).map_err(error)?;
                }
            }
        }
        transaction.commit().map_err(error)
    }

    /// Every agent in the roster, by name.
    pub fn all(&self) -> Result<Vec<RosterEntry>, RosterError> {
        let transaction = self.database.begin_read().map_err(error)?;
        let table = transaction.open_table(ROSTER).map_err(error)?;
        let mut entries = Vec::new();
        for item in table.iter().map_err(error)? {
            let (_, value) = item.map_err(error)?;
            // An entry that does not read (written by another version) is
            // skipped, not fatal.
            if let Ok(entry) = serde_json::from_slice::<RosterEntry>(value.value()) {
                entries.push(entry);
            }
        }
        entries.sort_by(|a, b| (&a.attributes.name, &a.peer).cmp(&(&b.attributes.name, &b.peer)));
        Ok(entries)
    }
}

/// The entries `target` selects, among those seen since `seen_since`.
pub fn select<'a>(
    entries: &'a [RosterEntry],
    target: &Target,
    seen_since: i64,
) -> Vec<&'a RosterEntry> {
    entries
        .iter()
        .filter(|entry| entry.last_seen >= seen_since)
        .filter(|entry| {
            target.matches(&AgentContext {
                attributes: &entry.attributes,
                history: &NoHistory,
            })
        })
        .collect()
}

/// The dashboard the shell opens with: agents by OS and version, how many
/// were heard from lately.
pub fn dashboard(entries: &[RosterEntry], now: i64) -> String {
    let mut by_os: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_version: BTreeMap<String, usize> = BTreeMap::new();
    let (mut last_hour, mut last_day) = (0, 0);
    for entry in entries {
        let os = if entry.attributes.env.ident.is_empty() {
            entry.attributes.os.clone()
        } else {
            format!("{} ({})", entry.attributes.os, entry.attributes.env.ident)
        };
        *by_os.entry(os).or_default() += 1;
        *by_version
            .entry(entry.attributes.version.clone())
            .or_default() += 1;
        last_hour += usize::from(now - entry.last_seen <= 3600);
        last_day += usize::from(now - entry.last_seen <= 86_400);
    }
    let mut text = format!(
        "{} agents in the roster: {last_hour} heard from in the last hour, {last_day} in the last day\n",
        entries.len()
    );
    let list = |map: &BTreeMap<String, usize>| {
        map.iter()
            .map(|(key, count)| format!("{count} {}", crate::render::printable(key)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !entries.is_empty() {
        text.push_str(&format!("  by OS:      {}\n", list(&by_os)));
        text.push_str(&format!("  by version: {}\n", list(&by_version)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(name: &str, os: &str) -> AgentAttributes {
        AgentAttributes {
            name: name.into(),
            os: os.into(),
            version: "0.1.0".into(),
            ..AgentAttributes::default()
        }
    }

    #[test]
    fn the_roster_survives_a_reopen_and_selects_by_target_and_age() {
        let dir = tempfile::tempdir().unwrap();
        {
            let roster = Roster::open(dir.path()).unwrap();
            roster
                .record(
                    &[
                        ("p1".into(), attributes("web-1", "linux")),
                        ("p2".into(), attributes("mac-1", "darwin")),
                    ],
                    1000,
                )
                .unwrap();
            roster
                .record(&[("p3".into(), attributes("web-2", "linux"))], 5000)
                .unwrap();
        }
        let roster = Roster::open(dir.path()).unwrap();
        let all = roster.all().unwrap();
        assert_eq!(
            all.iter()
                .map(|entry| entry.attributes.name.as_str())
                .collect::<Vec<_>>(),
            ["mac-1", "web-1", "web-2"]
        );
        let linux = Target::parse("os = 'linux'").unwrap();
        assert_eq!(select(&all, &linux, 0).len(), 2);
        assert_eq!(select(&all, &linux, 2000).len(), 1);
        let text = dashboard(&all, 5000);
        assert!(
            text.starts_with("3 agents in the roster: 1 heard from in the last hour"),
            "{text}"
        );
        assert!(text.contains("2 linux"), "{text}");
    }
}
