//! `agentinfo`: the agent describes itself: the attributes targets see,
//! its version, uptime and modules. The console's roster is built from it.
//!
//! Parameters: none (`{}`).
//!
//! Result: `elements` is `{"agent": {name, os, arch, version, id, mode,
//! env{...}, tags{...}}, "version", "startedat", "uptimeseconds",
//! "modules": [...]}`; `foundanything` is true; `statistics` is
//! `{exectime}`.

use std::time::{Instant, SystemTime};

use mig_proto::time::format_duration_seconds;
use mig_proto::{ModuleResult, Timestamp};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{Module, ModuleContext, ModuleError, go_duration, names, parse_parameters};
use crate::host::AGENT_VERSION;

pub struct AgentInfo;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Parameters {}

impl Module for AgentInfo {
    fn name(&self) -> &'static str {
        "agentinfo"
    }

    fn check(&self, parameters: &Json) -> Result<(), ModuleError> {
        if !parameters.is_null() {
            let _: Parameters = parse_parameters(parameters)?;
        }
        Ok(())
    }

    fn run(&self, parameters: &Json, context: &ModuleContext) -> Result<ModuleResult, ModuleError> {
        let started = Instant::now();
        self.check(parameters)?;
        let uptime = SystemTime::now()
            .duration_since(context.agent_started)
            .map_or(0, |elapsed| elapsed.as_secs());
        Ok(ModuleResult {
            foundanything: true,
            success: true,
            elements: json!({
                "agent": *context.attributes,
                "version": AGENT_VERSION,
                "startedat": Timestamp::from_system_time(context.agent_started),
                "uptimeseconds": uptime,
                "modules": names(),
            }),
            statistics: json!({"exectime": go_duration(started.elapsed())}),
            errors: Vec::new(),
        })
    }

    fn print(&self, result: &ModuleResult, _found_only: bool) -> Vec<String> {
        let elements = &result.elements;
        let agent = &elements["agent"];
        let text = |value: &Json| value.as_str().unwrap_or("").to_owned();
        let modules: Vec<String> = elements["modules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        let uptime = elements["uptimeseconds"].as_i64().unwrap_or(0);
        vec![format!(
            "name={} os={} arch={} ident='{}' version={} uptime={} addresses={} modules={}",
            text(&agent["name"]),
            text(&agent["os"]),
            text(&agent["arch"]),
            text(&agent["env"]["ident"]),
            text(&elements["version"]),
            format_duration_seconds(uptime),
            agent["env"]["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect::<Vec<_>>()
                .join(","),
            modules.join(",")
        )]
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mig_proto::AgentAttributes;

    use super::*;
    use crate::modules::testing::context_with;

    #[test]
    fn describes_the_agent() {
        let attributes = AgentAttributes {
            name: "web1".into(),
            os: "linux".into(),
            ..Default::default()
        };
        let mut context = context_with(std::path::Path::new("/"), None, attributes);
        context.agent_started = SystemTime::now() - Duration::from_secs(3700);
        let result = AgentInfo.run(&json!({}), &context).unwrap();
        assert!(result.foundanything);
        assert_eq!(result.elements["agent"]["name"], "web1");
        assert!(
            result.elements["modules"]
                .as_array()
                .unwrap()
                .contains(&json!("file"))
        );
        let line = &AgentInfo.print(&result, true)[0];
        assert!(
            line.starts_with("name=web1 os=linux") && line.contains("uptime=1h1m"),
            "{line}"
        );
        assert!(AgentInfo.run(&json!({"x": 1}), &context).is_err());
    }
}
