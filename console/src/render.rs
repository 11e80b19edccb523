//! Printing an action's outcome: MIG's printer lines for people, a table,
//! and JSON, NDJSON or CSV for scripts.
//!
//! `-show found|notfound|all` picks the agents in every format but JSON,
//! which is the whole outcome for scripts to filter.

use std::io::{self, Write};

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::args::{Format, Show};
use crate::launch::{AgentOutcome, LaunchOutcome};

/// What became of one agent, in one word.
pub fn agent_status(agent: &AgentOutcome) -> &'static str {
    if agent.rejected.is_some() {
        return "refused";
    }
    match &agent.result {
        Some(result) => result.status.as_str(),
        None if agent.acked => "silent",
        None => "unknown",
    }
}

fn found(agent: &AgentOutcome) -> bool {
    agent
        .result
        .as_ref()
        .is_some_and(mig_proto::AgentResult::found_anything)
}

fn shown(agent: &AgentOutcome, show: Show) -> bool {
    match show {
        Show::All => true,
        Show::Found => found(agent),
        Show::Notfound => agent.result.is_some() && !found(agent),
    }
}

/// One agent's printer lines, each with the module that printed it.
fn lines_of(outcome: &LaunchOutcome, agent: &AgentOutcome, show: Show) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    if let Some(reason) = &agent.rejected {
        lines.push((String::new(), format!("refused the action: {reason}")));
        return lines;
    }
    let Some(result) = &agent.result else {
        if show == Show::All {
            lines.push((String::new(), "acked but sent no result".to_owned()));
        }
        return lines;
    };
    let found_only = show == Show::Found;
    for (operation, module_result) in outcome.action.operations.iter().zip(&result.operations) {
        let printed = match mig_node::modules::lookup(&operation.module) {
            Some(module) => module.print(module_result, found_only),
            None => module_result.errors.clone(),
        };
        let module = mig_proto::modules::canonical_module_name(&operation.module).to_owned();
        lines.extend(printed.into_iter().map(|line| (module.clone(), line)));
    }
    if result.status != mig_proto::AgentStatus::Success {
        lines.push((
            String::new(),
            format!(
                "{}: {}",
                result.status.as_str(),
                result.reason.as_deref().unwrap_or("")
            ),
        ));
    }
    lines
}

/// The agents in the order they are printed: by name, then peer id.
fn sorted(outcome: &LaunchOutcome) -> Vec<&AgentOutcome> {
    let mut agents: Vec<&AgentOutcome> = outcome.agents.iter().collect();
    agents.sort_by(|a, b| {
        (a.attributes.name.as_str(), a.peer.as_str()).cmp(&(b.attributes.name.as_str(), &b.peer))
    });
    agents
}

/// A printable name: the agent's name, or its peer id if it has none.
fn name_of(agent: &AgentOutcome) -> &str {
    if agent.attributes.name.is_empty() {
        &agent.peer
    } else {
        &agent.attributes.name
    }
}

#[derive(Serialize)]
struct AgentLine<'a> {
    agent: &'a str,
    peer: &'a str,
    status: &'static str,
    found: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ack_ms: Option<u128>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_ms: Option<u128>,
    lines: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a mig_proto::AgentResult>,
}

/// The agents `show` picks, in print order.
fn picked(outcome: &LaunchOutcome, show: Show) -> Vec<&AgentOutcome> {
    sorted(outcome)
        .into_iter()
        .filter(|agent| shown(agent, show))
        .collect()
}

/// One row per printer line, with its module; an agent with no line gets
/// one empty row, so every picked agent appears.
fn rows(outcome: &LaunchOutcome, show: Show) -> Vec<(&AgentOutcome, String, String)> {
    let mut rows = Vec::new();
    for agent in picked(outcome, show) {
        let lines = lines_of(outcome, agent, show);
        if lines.is_empty() {
            rows.push((agent, String::new(), String::new()));
        }
        rows.extend(
            lines
                .into_iter()
                .map(|(module, line)| (agent, module, line)),
        );
    }
    rows
}

/// Text from agents made safe for a terminal: control characters and
/// bidirectional overrides (a hostile agent's file or host name could move
/// the cursor, recolour or reorder what the investigator reads) are shown
/// escaped. JSON escapes them itself; CSV keeps the bytes for scripts.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            safe.extend(c.escape_unicode());
        } else {
            safe.push(c);
        }
    }
    std::borrow::Cow::Owned(safe)
}

/// Writes `outcome` to `out` in `format`.
pub fn render(
    outcome: &LaunchOutcome,
    format: Format,
    show: Show,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, outcome)?;
            writeln!(out)
        }
        Format::Ndjson => {
            for agent in picked(outcome, show) {
                let line = AgentLine {
                    agent: name_of(agent),
                    peer: &agent.peer,
                    status: agent_status(agent),
                    found: found(agent),
                    ack_ms: agent.ack_ms,
                    result_ms: agent.result_ms,
                    lines: lines_of(outcome, agent, show)
                        .into_iter()
                        .map(|(_, line)| line)
                        .collect(),
                    result: agent.result.as_ref(),
                };
                serde_json::to_writer(&mut *out, &line)?;
                writeln!(out)?;
            }
            Ok(())
        }
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(&mut *out);
            writer.write_record(["agent", "peer", "status", "found", "module", "line"])?;
            for (agent, module, line) in rows(outcome, show) {
                let found = if found(agent) { "true" } else { "false" };
                writer.write_record([
                    name_of(agent),
                    &agent.peer,
                    agent_status(agent),
                    found,
                    &module,
                    &line,
                ])?;
            }
            writer.flush()
        }
        Format::Table => {
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Disabled)
                .set_header(["agent", "status", "found", "module", "result"]);
            for (agent, module, line) in rows(outcome, show) {
                let found = if found(agent) { "yes" } else { "no" };
                table.add_row([
                    &*printable(name_of(agent)),
                    agent_status(agent),
                    found,
                    &module,
                    &printable(&line),
                ]);
            }
            writeln!(out, "{table}")?;
            write_summary(outcome, show, out)
        }
        Format::Text => {
            for agent in picked(outcome, show) {
                for (_, line) in lines_of(outcome, agent, show) {
                    writeln!(out, "{} {}", printable(name_of(agent)), printable(&line))?;
                }
            }
            write_summary(outcome, show, out)
        }
    }
}

/// MIG's summary: how many found something, then who did not answer
/// well, by reason.
fn write_summary(outcome: &LaunchOutcome, show: Show, out: &mut dyn Write) -> io::Result<()> {
    let found = outcome.agents.iter().filter(|agent| found(agent)).count();
    writeln!(
        out,
        "{found} agent{} {} found results",
        if found == 1 { "" } else { "s" },
        if found == 1 { "has" } else { "have" }
    )?;
    if show == Show::All {
        return Ok(());
    }
    let mut by_status: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for agent in sorted(outcome) {
        let status = agent_status(agent);
        if status == "success" {
            continue;
        }
        let reason = agent.rejected.as_deref().or_else(|| {
            agent
                .result
                .as_ref()
                .and_then(|result| result.reason.as_deref())
        });
        let name = printable(name_of(agent));
        let entry = match reason {
            Some(reason) => format!("{name} ({})", printable(reason)),
            None => name.into_owned(),
        };
        by_status.entry(status).or_default().push(entry);
    }
    for (status, names) in by_status {
        writeln!(out, "{status}: {}", names.join(", "))?;
    }
    if !outcome.unheard.is_empty() {
        let names: Vec<_> = outcome.unheard.iter().map(|name| printable(name)).collect();
        writeln!(out, "never heard from: {}", names.join(", "))?;
    }
    Ok(())
}

/// The exit code for an outcome: 0 every agent heard from answered and
/// none failed or refused and none expected stayed away; 1 otherwise; 3
/// when collecting was detached.
pub fn exit_code(outcome: &LaunchOutcome) -> u8 {
    if outcome.detached {
        return 3;
    }
    let summary = &outcome.summary;
    if summary.silent == 0
        && summary.failed == 0
        && summary.rejected == 0
        && outcome.unheard.is_empty()
    {
        0
    } else {
        1
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mig_proto::{
        Action, ActionId, AgentAttributes, AgentResult, AgentStatus, ModuleResult, Timestamp,
    };
    use serde_json::json;

    /// An outcome with one agent of each kind, fixed to the byte.
    pub(crate) fn sample() -> LaunchOutcome {
        let action = Action::from_json(
            r#"{"name": "sample", "target": "os = 'linux'", "syntaxversion": 2,
                "operations": [{"module": "file", "parameters": {"searches": {"s1": {"paths": ["/usr/bin"],
                "sha2": ["aa"], "options": {"matchall": true}}}}}]}"#,
        )
        .unwrap();
        let at = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
        let search = json!({"paths": ["/usr/bin"], "sha2": ["aa"], "options": {"matchall": true}});
        let result = |name: &str, status, elements, found| AgentResult {
            action_id: ActionId([7; 32]),
            agent: attributes(name),
            status,
            reason: (status != AgentStatus::Success).then(|| "the walk hit its deadline".into()),
            operations: vec![ModuleResult {
                foundanything: found,
                success: status == AgentStatus::Success,
                elements,
                statistics: json!({"filescount": 12, "openfailed": 0, "totalhits": u8::from(found), "exectime": "3ms"}),
                errors: Vec::new(),
            }],
            started_at: at,
            finished_at: at,
        };
        let hit = json!({"s1": [{"file": "/usr/bin/kworkerd", "search": search,
            "fileinfo": {"size": 419080, "mode": "-rwxr-xr-x", "lastmodified": "2014-09-03 18:00:00 +0000 UTC"}}]});
        let miss = json!({"s1": [{"file": "", "search": search, "fileinfo": {"size": 0, "mode": "", "lastmodified": ""}}]});
        let agent =
            |name: &str, result: Option<AgentResult>, rejected: Option<&str>| AgentOutcome {
                peer: format!("12D3KooW{name}"),
                attributes: attributes(name),
                acked: rejected.is_none(),
                rejected: rejected.map(str::to_owned),
                result,
                ack_ms: Some(12),
                result_ms: None,
            };
        let agents = vec![
            agent(
                "web-2",
                Some(result("web-2", AgentStatus::Success, miss.clone(), false)),
                None,
            ),
            agent(
                "web-1",
                Some(result("web-1", AgentStatus::Success, hit, true)),
                None,
            ),
            agent(
                "db-1",
                Some(result("db-1", AgentStatus::Timeout, miss, false)),
                None,
            ),
            agent("db-2", None, None),
            agent("old-1", None, Some("unknown_module: no module 'file'")),
        ];
        let summary = crate::launch::Summary::of(&agents);
        LaunchOutcome {
            action_id: ActionId([7; 32]),
            action,
            agents,
            summary,
            elapsed_ms: 812,
            console_connections: 1,
            reports_dropped: Default::default(),
            graylisted_peers: Vec::new(),
            detached: false,
            expected: Some(6),
            unheard: vec!["db-3".into()],
        }
    }

    fn attributes(name: &str) -> AgentAttributes {
        AgentAttributes {
            name: name.into(),
            os: "linux".into(),
            ..AgentAttributes::default()
        }
    }

    /// Compares with `tests/golden/NAME`; `UPDATE_GOLDEN=1` rewrites it.
    fn golden(name: &str, format: Format, show: Show) {
        let mut out = Vec::new();
        render(&sample(), format, show, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert_eq!(text, expected, "{name} differs from its golden file");
    }

    #[test]
    fn text_is_migs_printer_lines_and_summary() {
        golden("text-found.txt", Format::Text, Show::Found);
        golden("text-all.txt", Format::Text, Show::All);
        golden("text-notfound.txt", Format::Text, Show::Notfound);
    }

    #[test]
    fn table_csv_ndjson_and_json() {
        golden("table-all.txt", Format::Table, Show::All);
        golden("found.csv", Format::Csv, Show::Found);
        golden("all.csv", Format::Csv, Show::All);
        golden("all.ndjson", Format::Ndjson, Show::All);
        golden("outcome.json", Format::Json, Show::Found);
    }

    #[test]
    fn what_agents_send_cannot_drive_the_terminal() {
        let mut outcome = sample();
        outcome.agents[1].attributes.name = "web-1\u{1b}[2J\u{202e}".into();
        let mut out = Vec::new();
        render(&outcome, Format::Text, Show::Found, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}'),
            "{text}"
        );
        assert!(
            text.contains("web-1\\u{1b}[2J\\u{202e} /usr/bin/kworkerd"),
            "{text}"
        );
        assert_eq!(printable("plain /usr/bin/ls"), "plain /usr/bin/ls");
    }

    #[test]
    fn exit_codes_say_whether_everyone_answered_well() {
        let mut outcome = sample();
        assert_eq!(exit_code(&outcome), 1);
        outcome
            .agents
            .retain(|agent| agent_status(agent) == "success");
        outcome.summary = crate::launch::Summary::of(&outcome.agents);
        outcome.unheard.clear();
        assert_eq!(exit_code(&outcome), 0);
        outcome.unheard.push("db-3".into());
        assert_eq!(exit_code(&outcome), 1);
        outcome.detached = true;
        assert_eq!(exit_code(&outcome), 3);
    }
}
