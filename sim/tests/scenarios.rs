//! Small simulated fleets, run in CI: every targeted agent answers and no
//! other does, across segments joined only by a relay; agents joining
//! while the action is valid answer too; a seed decides the layout and who
//! answers, whichever handshake the links take.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when a step fails.

use mig_sim::link::{Handshake, LinkProfile};
use mig_sim::report::RunReport;
use mig_sim::scenario::{Churn, Scenario, SegmentSpec};

/// One fleet at a time: they share two cores, and a fleet starved by
/// another measures the machine, not the mesh.
static ONE_FLEET: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(scenario: &Scenario) -> RunReport {
    let _alone = ONE_FLEET
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(mig_sim::fleet::run(scenario, true))
        .unwrap()
}

fn segment(name: &str, latency_ms: f64) -> SegmentSpec {
    SegmentSpec {
        name: name.into(),
        share: 1.0,
        link: LinkProfile {
            latency_ms,
            ..LinkProfile::default()
        },
    }
}

#[test]
fn fifty_agents_in_two_segments_behind_one_relay_answer_when_targeted() {
    let scenario = Scenario {
        seed: 7,
        nodes: 50,
        relays: 1,
        segments: vec![segment("office", 5.0), segment("datacenter", 1.0)],
        settle_s: 2.0,
        ..Scenario::default()
    };
    let report = run(&scenario);
    let action = &report.actions[0];
    let layout = scenario.layout();
    let linux = layout
        .agents
        .iter()
        .filter(|agent| agent.os == "linux")
        .count();
    assert_eq!(
        action.targeted, linux,
        "the seed example targets linux agents"
    );
    assert!(
        action.targeted > 20 && action.targeted < 50,
        "{}",
        action.targeted
    );
    assert_eq!(
        action.answered, action.targeted,
        "silent: {:?}",
        action.silent
    );
    assert!(
        action.answered_untargeted.is_empty(),
        "{:?}",
        action.answered_untargeted
    );
    assert_eq!(
        action.found, action.planted_targeted,
        "the planted agents, and only they, found the file"
    );
    // Both segments answered, through the relay only.
    for segment in 0..2 {
        assert!(layout.agents.iter().enumerate().any(|(index, agent)| {
            agent.segment == segment && action.answered_agents.contains(&layout.agents[index].name)
        }));
    }
    assert!(report.relay_traffic.sent_mean > 0.0);
    // Every agent got the action by gossip, some more than once; none
    // failed to pass a report on.
    assert!(
        report.agent_traffic.gossip_received_mean >= 1.0,
        "{:?}",
        report.agent_traffic
    );
    // The relay sends the action to every agent itself, not only to its
    // gossip mesh (a dozen at most).
    assert!(
        report.relay_traffic.gossip_sent_mean >= scenario.nodes as f64,
        "{:?}",
        report.relay_traffic
    );
    assert_eq!(report.agent_traffic.deliveries_failed, 0);
    // Honest agents address their reports as the action says: no hop had
    // to set a report's routing back to the action's.
    assert_eq!(report.relay_traffic.reports_rerouted, 0);
    assert_eq!(report.agent_traffic.reports_rerouted, 0);
    // Every agent holds a connection to the relay the console named in its
    // circuit addresses: reports go there directly, not through other
    // agents (along the gossip tree, agents passed on about one each here).
    assert!(
        report.agent_traffic.reports_forwarded_mean < 0.2,
        "{:?}",
        report.agent_traffic
    );
    // A sweep of eight files is over long before an ack is due: results
    // go home alone, no ack made (not all of them on a loaded machine,
    // where module runs, at the lowest priority, may wait longer than the
    // ack's hold).
    assert!(
        report.agent_traffic.acks_sent < action.answered as u64,
        "{} acks made for {} answers",
        report.agent_traffic.acks_sent,
        action.answered
    );
    // Nobody is frozen or cut off here: no connection looks dead.
    assert_eq!(report.agent_traffic.connections_dead, 0);
    assert_eq!(report.relay_traffic.connections_dead, 0);
    // Running fifty nodes costs CPU, and no more than the machine has.
    assert!(
        report.action_cores > 0.0 && report.action_cores <= report.cores as f64 + 0.5,
        "{} of {} cores",
        report.action_cores,
        report.cores
    );
    assert!(report.idle_cores <= report.cores as f64 + 0.5);
}

#[test]
fn agents_joining_while_the_action_is_valid_answer_it() {
    let scenario = Scenario {
        seed: 11,
        nodes: 12,
        churn: Some(Churn {
            leave_per_s: 0.0,
            join_per_s: 2.0,
            for_s: 3.0,
        }),
        collect_for_s: 10.0,
        settle_s: 1.0,
        action: mig_sim::scenario::ActionSpec {
            target: "true".into(),
            ..Default::default()
        },
        ..Scenario::default()
    };
    let report = run(&scenario);
    let action = &report.actions[0];
    let layout = scenario.layout();
    assert_eq!(layout.agents.len(), 18, "12 at the start, 6 joiners");
    assert_eq!(action.targeted, 18);
    for joiner in &layout.agents[12..] {
        assert!(
            action.answered_agents.contains(&joiner.name),
            "{} joined after the publish and did not answer: {:?}",
            joiner.name,
            action.silent
        );
    }
    assert_eq!(action.answered, 18, "{:?}", action.silent);
}

/// The second run also takes the real Noise handshake instead of the
/// default plaintext one: the answers may not depend on it.
#[test]
fn the_same_seed_gives_the_same_fleet_and_the_same_answers_over_either_handshake() {
    let scenario = Scenario {
        seed: 99,
        nodes: 15,
        settle_s: 1.0,
        ..Scenario::default()
    };
    let first = run(&scenario);
    let second = run(&Scenario {
        handshake: Handshake::Noise,
        ..scenario.clone()
    });
    assert!(first.network_model.contains("plaintext handshake"));
    assert!(second.network_model.contains("real Noise handshake"));
    assert_eq!(scenario.layout(), scenario.layout());
    let mut answered = [
        first.actions[0].answered_agents.clone(),
        second.actions[0].answered_agents.clone(),
    ];
    answered.iter_mut().for_each(|names| names.sort());
    assert!(!answered[0].is_empty());
    assert_eq!(answered[0], answered[1]);
    let other = Scenario {
        seed: 100,
        ..scenario.clone()
    };
    assert_ne!(other.layout(), scenario.layout());
}

/// A segment cut off before the publish and reconnected while the action
/// is valid: its agents answer, even those whose connections survived the
/// cut (no byte crossed it), which only anti-entropy brings the action to.
#[test]
fn a_healed_partition_answers() {
    let scenario = Scenario {
        seed: 5,
        nodes: 24,
        segments: vec![segment("hq", 1.0), segment("branch", 5.0)],
        partition: Some(mig_sim::scenario::Partition {
            segment: "branch".into(),
            at_s: -1.0,
            heal_at_s: 3.0,
        }),
        collect_for_s: 25.0,
        settle_s: 1.0,
        action: mig_sim::scenario::ActionSpec {
            target: "true".into(),
            ..Default::default()
        },
        ..Scenario::default()
    };
    let report = run(&scenario);
    let action = &report.actions[0];
    let layout = scenario.layout();
    assert!(layout.agents.iter().any(|agent| agent.segment == 1));
    assert_eq!(action.answered, 24, "{:?}", action.silent);
}
