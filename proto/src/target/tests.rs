//! Tests of the target language: MIG's forms, errors, evaluation, and
//! property tests for the parser and printer.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::attributes::{AgentAttributes, AgentContext, AgentEnvironment, NoHistory};

fn web_server() -> AgentAttributes {
    AgentAttributes {
        name: "buildbot-web1.example.org".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        version: "20261128+abc.prod".into(),
        id: "12D3KooWweb1".into(),
        mode: "daemon".into(),
        env: AgentEnvironment {
            ident: "Ubuntu 14.04 trusty".into(),
            kernel: "6.1.0".into(),
            init: "systemd".into(),
            addresses: vec!["10.20.30.40/24".into(), "fd00::5/64".into()],
            publicip: Some("203.0.113.7".into()),
            isproxied: false,
            proxy: None,
        },
        tags: BTreeMap::from([
            ("operator".into(), "opsec".into()),
            ("team name".into(), "red".into()),
        ]),
    }
}

fn selects(target: &str, agent: &AgentAttributes) -> bool {
    let target = Target::parse(target).unwrap_or_else(|error| panic!("{target}: {error}"));
    target.matches(&AgentContext {
        attributes: agent,
        history: &NoHistory,
    })
}

#[test]
fn mig_forms_users_already_wrote() {
    let agent = web_server();
    for target in [
        "agents.os = 'linux'",
        "name LIKE '%buildbot%'",
        "name like '%'",
        "environment->>'ident' LIKE '%Ubuntu%'",
        "tags->>'operator'='opsec'",
        "tags#>>'{operator}'='opsec'",
        "environment->>'os' IN ('linux','darwin')",
        "environment->>'isproxied' = 'false'",
        "status='online'",
        "queueloc LIKE 'linux.%'",
        "os='linux' AND (tags->>'operator' = 'opsec' OR name = 'x')",
    ] {
        assert!(selects(target, &agent), "{target}");
    }
}

#[test]
fn additions_beyond_mig() {
    let agent = web_server();
    let yes = [
        "true",
        "os != 'darwin'",
        "name NOT LIKE '%mysql%'",
        "name ILIKE '%BUILDBOT%'",
        "name ~ '^buildbot-web[0-9]+\\.'",
        "name ~* '^BUILDBOT'",
        "name !~ 'mysql'",
        "env.addresses WITHIN '10.0.0.0/8'",
        "addresses <<= 'fd00::/8'",
        "env.addresses NOT WITHIN '192.168.0.0/16'",
        "os NOT IN ('windows', 'darwin')",
        "tags.operator = 'opsec'",
        "tags->>'team name' = 'red'",
        "tags.missing IS NULL",
        "tags.operator IS NOT NULL",
        "NOT os = 'windows'",
        "NOT (os = 'windows' OR os = 'darwin')",
        "env.publicip = '203.0.113.7'",
    ];
    for target in yes {
        assert!(selects(target, &agent), "{target}");
    }
    let no = [
        "false",
        "os = 'Linux'",
        "name LIKE 'web%'",
        "env.addresses WITHIN '192.168.0.0/16'",
        "tags.missing = 'x'",
        "tags.missing != 'x'",
        "tags.missing NOT LIKE '%'",
        "env.proxy IS NOT NULL",
        "os = 'linux' AND NOT tags.operator = 'opsec'",
    ];
    for target in no {
        assert!(!selects(target, &agent), "{target}");
    }
}

#[test]
fn found_and_notfound_use_the_agents_history() {
    let agent = web_server();
    let hit = ActionId([1; 32]);
    let miss = ActionId([2; 32]);
    let history = BTreeMap::from([(hit, true), (miss, false)]);
    let context = AgentContext {
        attributes: &agent,
        history: &history,
    };
    let check = |text: String| Target::parse(&text).unwrap().matches(&context);
    assert!(check(format!("found('{hit}')")));
    assert!(!check(format!("found('{miss}')")));
    assert!(check(format!("notfound('{miss}')")));
    assert!(!check(format!("notfound('{hit}')")));
    let never = ActionId([3; 32]);
    assert!(!check(format!("found('{never}') OR notfound('{never}')")));
    let target = Target::parse(&format!("os = 'linux' AND found('{hit}')")).unwrap();
    assert_eq!(target.referenced_actions(), vec![hit]);
}

#[test]
fn like_semantics() {
    let like = |pattern: &str, value: &str| LikePattern::new(pattern.into(), false).matches(value);
    assert!(like("%", ""));
    assert!(like("a%c", "abbbc"));
    assert!(like("a_c", "abc"));
    assert!(!like("a_c", "abbc"));
    assert!(like("%a%b%c%", "xxaxxbxxcxx"));
    assert!(like("100\\%", "100%"));
    assert!(!like("100\\%", "1000"));
    assert!(like("é_", "éx"));
    assert!(LikePattern::new("ÉCOLE%".into(), true).matches("école normale"));
}

#[test]
fn errors_name_the_column_and_show_a_caret() {
    let error = Target::parse("agents.os = ").unwrap_err();
    assert_eq!(error.column, 13);
    assert_eq!(
        error.to_string(),
        "column 13: expected a value here\n  agents.os = \n              ^"
    );

    let error = Target::parse("os = 'linux' AND nmae = 'x'").unwrap_err();
    assert_eq!(error.column, 18);
    assert!(
        error.message.contains("did you mean 'name'"),
        "{}",
        error.message
    );
    assert!(
        error.excerpt.ends_with("                  ^^^^"),
        "{}",
        error.excerpt
    );

    let cases = [
        ("os = \"linux\"", 6, "single quotes"),
        ("os = 'linux", 6, "never closed"),
        ("(os = 'linux'", 1, "never closed"),
        ("os = 'linux')", 13, "no matching"),
        ("os > '1'", 4, "ordering"),
        ("os", 3, "expected a comparison"),
        ("name ~ '('", 8, "invalid regular expression"),
        ("env.addresses WITHIN 'nope'", 22, "IP network"),
        ("env.idnet = 'x'", 5, "did you mean 'ident'"),
        ("found('abc')", 7, "64 hexadecimal"),
        (
            "id IN (SELECT agentid FROM commands)",
            8,
            "found('<action id>')",
        ),
        ("", 1, "empty"),
        ("os = 'a' os = 'b'", 10, "expected AND, OR"),
        ("os = 'x' AND", 13, "ends where"),
    ];
    for (text, column, fragment) in cases {
        let error = Target::parse(text).unwrap_err();
        assert_eq!(error.column, column, "{text}: {error}");
        assert!(error.message.contains(fragment), "{text}: {error}");
    }
}

#[test]
fn columns_count_characters_not_bytes() {
    let error = Target::parse("name = 'é' AND ?").unwrap_err();
    assert_eq!(error.column, 16);
}

#[test]
fn limits_hold() {
    let deep = format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(
        Target::parse(&deep).unwrap_err().message.contains("limit"),
        "length first"
    );
    let deep = format!(
        "{}true{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(
        Target::parse(&deep)
            .unwrap_err()
            .message
            .contains("nested deeper")
    );
    let nots = format!("{}true", "NOT ".repeat(MAX_DEPTH + 1));
    assert!(
        Target::parse(&nots)
            .unwrap_err()
            .message
            .contains("nested deeper")
    );
    assert!(
        Target::parse(&format!(
            "{}true{}",
            "(".repeat(MAX_DEPTH),
            ")".repeat(MAX_DEPTH)
        ))
        .is_ok()
    );
    let huge_regex = "name ~ '(a{1000}){1000}'";
    assert!(
        Target::parse(huge_regex)
            .unwrap_err()
            .message
            .contains("compiles to more than")
    );
    let long_chain = vec!["os = 'linux'"; 500].join(" AND ");
    assert!(
        selects(&long_chain, &web_server()),
        "long flat chains are not deep"
    );
}

#[test]
fn printing_is_canonical() {
    let target =
        Target::parse("agents.OS='linux' and (NAME like '%x%' or tags#>>'{a b}' = 'it''s')")
            .unwrap();
    assert_eq!(
        target.to_string(),
        "os = 'linux' AND (name LIKE '%x%' OR tags->>'a b' = 'it''s')"
    );
}

fn attribute_strategy() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        Just(Attribute::Name),
        Just(Attribute::Os),
        Just(Attribute::Arch),
        Just(Attribute::Version),
        Just(Attribute::Id),
        Just(Attribute::Status),
        Just(Attribute::QueueLoc),
        prop::sample::select(EnvKey::ALL.to_vec()).prop_map(Attribute::Env),
        "[a-z_][a-z0-9_]{0,8}".prop_map(Attribute::Tag),
        ".{1,8}".prop_map(Attribute::Tag),
    ]
}

fn predicate_strategy() -> impl Strategy<Value = Predicate> {
    let regexes = prop::sample::select(vec!["^a", "b+$", "[0-9]{2}", "x|y", "\\.", "'q'"]);
    prop_oneof![
        ".*".prop_map(Predicate::Equals),
        ".*".prop_map(Predicate::NotEquals),
        (".*", any::<bool>(), any::<bool>()).prop_map(|(source, insensitive, negated)| {
            Predicate::Like {
                pattern: LikePattern::new(source, insensitive),
                negated,
            }
        }),
        (prop::collection::vec(".*", 1..4), any::<bool>())
            .prop_map(|(values, negated)| Predicate::In { values, negated }),
        (regexes, any::<bool>(), any::<bool>()).prop_map(|(source, insensitive, negated)| {
            let regex = regex::RegexBuilder::new(source)
                .case_insensitive(insensitive)
                .build()
                .unwrap();
            Predicate::Matches {
                regex: TargetRegex {
                    source: source.into(),
                    case_insensitive: insensitive,
                    regex,
                },
                negated,
            }
        }),
        (any::<u32>(), 0u8..=32, any::<bool>()).prop_map(|(address, prefix, negated)| {
            let network = IpNet::V4(ipnet::Ipv4Net::new(address.into(), prefix).unwrap());
            Predicate::Within { network, negated }
        }),
        any::<bool>().prop_map(|negated| Predicate::IsNull { negated }),
    ]
}

fn expr_strategy() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Expr::Constant),
        (attribute_strategy(), predicate_strategy()).prop_map(|(attribute, predicate)| {
            Expr::Compare {
                attribute,
                predicate,
            }
        }),
        any::<[u8; 32]>().prop_map(|bytes| Expr::Found(ActionId(bytes))),
        any::<[u8; 32]>().prop_map(|bytes| Expr::NotFound(ActionId(bytes))),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|expr| Expr::Not(Box::new(expr))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
        ]
    })
}

proptest! {
    #[test]
    fn printing_then_parsing_gives_the_same_tree(expr in expr_strategy()) {
        let text = expr.to_string();
        let parsed = Target::parse(&text).map_err(|error| TestCaseError::fail(format!("{text}\n{error}")))?;
        prop_assert_eq!(parsed.expr(), &expr, "{}", text);
    }

    #[test]
    fn arbitrary_strings_never_panic(text in ".{0,200}") {
        if let Ok(target) = Target::parse(&text) {
            let agent = web_server();
            target.matches(&AgentContext { attributes: &agent, history: &NoHistory });
        }
    }

    #[test]
    fn arbitrary_token_soup_never_panics(words in prop::collection::vec(prop::sample::select(vec![
        "(", ")", "NOT", "AND", "OR", "os", "=", "'x'", "LIKE", "IN", ",", "tags", "->>", "#>>", ".",
        "~", "WITHIN", "'10.0.0.0/8'", "IS", "NULL", "found", "'{a}'", "true", "!=", "<<=", "agents",
    ]), 0..40)) {
        let text = words.join(" ");
        let _ = Target::parse(&text);
    }
}
