//! Target expressions: parsed from signed actions and from the console's
//! `-t`, evaluated on every agent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mig_proto::{AgentAttributes, AgentContext, NoHistory, Target};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(target) = Target::parse(source) else {
        return;
    };
    // The printed form parses to the same expression.
    let printed = target.to_string();
    let again = Target::parse(&printed).expect("a printed target parses");
    assert_eq!(again.to_string(), printed);
    let mut attributes = AgentAttributes {
        name: "web1.example.org".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        ..Default::default()
    };
    attributes.env.addresses = vec!["10.1.2.3/24".into(), "fe80::1/64".into()];
    attributes.tags.insert("operator".into(), "IT".into());
    let context = AgentContext {
        attributes: &attributes,
        history: &NoHistory,
    };
    assert_eq!(target.matches(&context), again.matches(&context));
});
