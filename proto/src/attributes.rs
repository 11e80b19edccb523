//! An agent's attributes: what targets are evaluated against and what the
//! `agentinfo` module and the console's roster show.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::ActionId;
use crate::target::{Attribute, EnvKey, TargetContext, values_of};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentAttributes {
    /// The host name.
    pub name: String,
    /// `linux`, `darwin`, `windows`, ...
    pub os: String,
    pub arch: String,
    /// The agent's version.
    pub version: String,
    /// The agent's libp2p peer id, its stable identity on the mesh.
    pub id: String,
    /// `daemon` for a long-running agent.
    pub mode: String,
    #[serde(default)]
    pub env: AgentEnvironment,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentEnvironment {
    /// The distribution, e.g. "Debian GNU/Linux 12 (bookworm)".
    #[serde(default)]
    pub ident: String,
    #[serde(default)]
    pub kernel: String,
    /// `systemd`, `upstart`, `sysvinit`, ...
    #[serde(default)]
    pub init: String,
    /// The host's addresses as CIDR strings, e.g. `10.0.0.5/24`.
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publicip: Option<String>,
    #[serde(default)]
    pub isproxied: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
}

/// An agent's memory of the actions it ran: found something or not.
pub trait ActionHistory {
    fn outcome_of(&self, action: &ActionId) -> Option<bool>;
}

impl ActionHistory for BTreeMap<ActionId, bool> {
    fn outcome_of(&self, action: &ActionId) -> Option<bool> {
        self.get(action).copied()
    }
}

/// No history at all: `found(...)` selects nobody.
pub struct NoHistory;

impl ActionHistory for NoHistory {
    fn outcome_of(&self, _action: &ActionId) -> Option<bool> {
        None
    }
}

/// An agent as a target sees it: attributes plus history.
pub struct AgentContext<'a> {
    pub attributes: &'a AgentAttributes,
    pub history: &'a dyn ActionHistory,
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

impl TargetContext for AgentContext<'_> {
    fn values(&self, attribute: &Attribute) -> Vec<Cow<'_, str>> {
        let attributes = self.attributes;
        match attribute {
            Attribute::Name => values_of(non_empty(&attributes.name)),
            Attribute::Os => values_of(non_empty(&attributes.os)),
            Attribute::Arch => values_of(non_empty(&attributes.arch)),
            Attribute::Version => values_of(non_empty(&attributes.version)),
            Attribute::Id | Attribute::Peer => values_of(non_empty(&attributes.id)),
            Attribute::Mode => values_of(non_empty(&attributes.mode)),
            // An agent evaluating a target is online by definition; MIG's
            // command line defaulted to `status='online'`.
            Attribute::Status => vec![Cow::Borrowed("online")],
            Attribute::QueueLoc => vec![Cow::Owned(format!("{}.{}", attributes.os, attributes.id))],
            Attribute::Env(key) => {
                let env = &attributes.env;
                match key {
                    EnvKey::Ident => values_of(non_empty(&env.ident)),
                    EnvKey::Kernel => values_of(non_empty(&env.kernel)),
                    EnvKey::Init => values_of(non_empty(&env.init)),
                    EnvKey::Addresses => env
                        .addresses
                        .iter()
                        .map(|a| Cow::Borrowed(a.as_str()))
                        .collect(),
                    EnvKey::PublicIp => values_of(env.publicip.as_deref()),
                    EnvKey::IsProxied => {
                        vec![Cow::Borrowed(if env.isproxied { "true" } else { "false" })]
                    }
                    EnvKey::Proxy => values_of(env.proxy.as_deref()),
                }
            }
            Attribute::Tag(key) => values_of(attributes.tags.get(key).map(String::as_str)),
        }
    }

    fn outcome_of(&self, action: &ActionId) -> Option<bool> {
        self.history.outcome_of(action)
    }
}
