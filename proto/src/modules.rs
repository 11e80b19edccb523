//! Module names as actions may spell them.

/// Older names that still appear in action files, and the module they mean.
const ALIASES: &[(&str, &str)] = &[("filechecker", "file")];

/// The module an operation's name refers to (`filechecker` is `file`).
pub fn canonical_module_name(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, canonical)| canonical)
}

#[cfg(test)]
mod tests {
    #[test]
    fn filechecker_is_file() {
        assert_eq!(super::canonical_module_name("filechecker"), "file");
        assert_eq!(super::canonical_module_name("netstat"), "netstat");
    }
}
