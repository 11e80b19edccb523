//! Investigator ACLs, with MIG's semantics: per module (or `default`), the
//! investigators allowed to sign for it, each with a weight, and the minimum
//! total weight of distinct verified signers an operation needs.
//!
//! The file format is MIG's JSON (`docs/acl.md`); TOML with the same shape
//! is read by `mig-keys`. An example:
//!
//! ```json
//! {"default": {"minimumweight": 1,
//!              "investigators": {"Alice": {"fingerprint": "E608…", "weight": 1}}},
//!  "file":    {"minimumweight": 2, "investigators": {…}}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::Fingerprint;
use crate::modules::canonical_module_name;

/// The ACL entry used for modules that have none of their own.
pub const DEFAULT_ENTRY: &str = "default";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Acl {
    pub entries: BTreeMap<String, AclEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclEntry {
    pub minimumweight: u32,
    #[serde(default)]
    pub investigators: BTreeMap<String, AclInvestigator>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclInvestigator {
    pub fingerprint: Fingerprint,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("acl entry '{entry}': minimumweight must be at least 1")]
    MinimumWeightTooLow { entry: String },
    #[error("acl entry '{entry}': fingerprint {fingerprint} is listed twice")]
    DuplicateInvestigator {
        entry: String,
        fingerprint: Fingerprint,
    },
    #[error("the acl has no entries; give at least a 'default' entry")]
    Empty,
}

impl Acl {
    /// Checks MIG's rules: every entry needs a minimum weight of at least 1,
    /// and one key may appear once per entry.
    pub fn validate(&self) -> Result<(), AclError> {
        if self.entries.is_empty() {
            return Err(AclError::Empty);
        }
        for (name, entry) in &self.entries {
            if entry.minimumweight < 1 {
                return Err(AclError::MinimumWeightTooLow {
                    entry: name.clone(),
                });
            }
            let mut seen = Vec::new();
            for investigator in entry.investigators.values() {
                if seen.contains(&investigator.fingerprint) {
                    return Err(AclError::DuplicateInvestigator {
                        entry: name.clone(),
                        fingerprint: investigator.fingerprint,
                    });
                }
                seen.push(investigator.fingerprint);
            }
        }
        Ok(())
    }

    /// The ACL used when none is configured: every trusted key may sign for
    /// every module on its own (weight 1, minimum 1).
    pub fn any_trusted_key<'a>(trusted: impl IntoIterator<Item = (&'a str, Fingerprint)>) -> Self {
        let investigators = trusted
            .into_iter()
            .map(|(name, fingerprint)| {
                let label = if name.is_empty() {
                    fingerprint.to_string()
                } else {
                    name.to_owned()
                };
                (
                    label,
                    AclInvestigator {
                        fingerprint,
                        weight: 1,
                    },
                )
            })
            .collect();
        let mut entries = BTreeMap::new();
        entries.insert(
            DEFAULT_ENTRY.to_owned(),
            AclEntry {
                minimumweight: 1,
                investigators,
            },
        );
        Self { entries }
    }

    /// The entry that governs `module`: its own (under its name as written
    /// or its canonical name), else `default`. Returns the entry's name too.
    pub fn entry_for(&self, module: &str) -> Option<(&str, &AclEntry)> {
        let canonical = canonical_module_name(module);
        self.entries
            .get_key_value(module)
            .or_else(|| {
                // An entry may use another spelling of the same module
                // (MIG's ACLs name `filechecker`).
                self.entries
                    .iter()
                    .find(|(name, _)| canonical_module_name(name) == canonical)
            })
            .or_else(|| self.entries.get_key_value(DEFAULT_ENTRY))
            .map(|(name, entry)| (name.as_str(), entry))
    }
}

impl AclEntry {
    /// The total weight the given distinct signers carry in this entry.
    pub fn weight_of(&self, signers: &[Fingerprint]) -> u64 {
        self.investigators
            .values()
            .filter(|investigator| signers.contains(&investigator.fingerprint))
            .map(|investigator| u64::from(investigator.weight))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(byte: u8) -> Fingerprint {
        Fingerprint([byte; 20])
    }

    fn mig_doc_example() -> Acl {
        let text = format!(
            r#"{{"filechecker":{{"minimumweight":2,"investigators":{{
                "Bob Kelso":{{"fingerprint":"{}","weight":2}},
                "John Smith":{{"fingerprint":"{}","weight":1}}}}}},
               "default":{{"minimumweight":1,"investigators":{{
                "John Smith":{{"fingerprint":"{}","weight":1}}}}}}}}"#,
            fingerprint(1),
            fingerprint(2),
            fingerprint(2)
        );
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn weights_add_up_per_module() {
        let acl = mig_doc_example();
        acl.validate().unwrap();
        let (name, entry) = acl.entry_for("file").unwrap();
        assert_eq!(name, "filechecker", "the alias finds the legacy entry");
        assert_eq!(entry.weight_of(&[fingerprint(2)]), 1);
        assert_eq!(entry.weight_of(&[fingerprint(1), fingerprint(2)]), 3);
        assert_eq!(acl.entry_for("netstat").unwrap().0, "default");
    }

    #[test]
    fn invalid_acls_are_refused() {
        let mut acl = mig_doc_example();
        acl.entries.get_mut("default").unwrap().minimumweight = 0;
        assert!(matches!(
            acl.validate(),
            Err(AclError::MinimumWeightTooLow { .. })
        ));

        let mut acl = mig_doc_example();
        acl.entries
            .get_mut("default")
            .unwrap()
            .investigators
            .insert(
                "John again".into(),
                AclInvestigator {
                    fingerprint: fingerprint(2),
                    weight: 5,
                },
            );
        assert!(matches!(
            acl.validate(),
            Err(AclError::DuplicateInvestigator { .. })
        ));
        assert_eq!(Acl::default().validate(), Err(AclError::Empty));
    }

    #[test]
    fn no_entry_without_default() {
        let mut acl = mig_doc_example();
        acl.entries.remove("default");
        assert!(acl.entry_for("netstat").is_none());
    }
}
