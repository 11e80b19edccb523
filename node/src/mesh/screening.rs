//! Sorting a delivery of report parcels: which are for this console (and
//! open with its key), which go further, and which are refused, with the
//! penalty the sender earned. Pure (the node passes in what it knows), so
//! it runs off the swarm task, where signatures are checked.

use std::collections::HashMap;

use mig_proto::ActionId;
use mig_proto::messages::{MAX_DELIVERY_BYTES, with_inflation_budget};
use mig_proto::seal::SealSecret;

use super::penalties;
use super::reports::{self, Parcel, Report};

/// What a delivery turned out to hold.
#[derive(Default)]
pub struct Screened {
    /// Refuse the whole batch: nothing stored, nothing acknowledged.
    pub refuse: bool,
    /// Verified reports for actions this console sent.
    pub mine: Vec<Report>,
    /// Verified parcels to pass on.
    pub others: Vec<Parcel>,
    /// Parcels dropped or refused, by reason.
    pub dropped: Vec<(&'static str, u64)>,
    /// Parcels passed on whose routing fields disagreed with the signed
    /// action and were set back to it.
    pub rerouted: u64,
    /// Penalty points the sender earned.
    pub penalty: f64,
}

impl Screened {
    /// A batch refused before it was read.
    pub fn refused(reason: &'static str, parcels: usize, penalty: f64) -> Self {
        Self {
            refuse: true,
            dropped: vec![(reason, parcels as u64)],
            penalty,
            ..Self::default()
        }
    }
}

/// Why a batch is refused when the console cannot look up what it sent:
/// the one refusal worth trying again unchanged.
pub const HISTORY_UNREADABLE: &str = "history_unreadable";

/// What a console knows of the action a report addressed to it is about.
pub enum Sent {
    /// Not an action this node sent.
    NotByMe,
    /// Sent without a seal key: reports come in the clear.
    InTheClear,
    /// Sent with a seal key: reports open with this secret.
    SealedTo(SealSecret),
    /// The history could not be read; the sender tries again later.
    Unknown,
}

/// Where an action's reports go, as its signed `reply_to` and expiry say.
/// A parcel's own routing fields are not covered by the agent's signature:
/// a hop could rewrite them to send reports elsewhere, or to make the next
/// hops dial addresses of its choosing. Hops that know the action set them
/// back to this.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The console's peer id (bytes).
    pub console: Vec<u8>,
    pub console_addresses: Vec<String>,
    pub expire_after: i64,
}

impl Route {
    /// The route `reply_to` gives the reports on an action that expires at
    /// `expire_after`: what agents address their parcels with, and what
    /// hops set them back to, from this one place so the two agree.
    pub fn new(
        reply_to: &mig_proto::ReplyTo,
        expire_after: i64,
    ) -> Result<Self, libp2p::identity::ParseError> {
        Ok(Self {
            console: reply_to.peer_id.parse::<libp2p::PeerId>()?.to_bytes(),
            console_addresses: reply_to.addresses.clone(),
            expire_after,
        })
    }

    /// Sets `parcel`'s routing fields to this route; true if any differed.
    fn impose(&self, parcel: &mut Parcel) -> bool {
        let differed = parcel.console != self.console
            || parcel.console_addresses != self.console_addresses
            || parcel.expire_after != self.expire_after;
        if differed {
            parcel.console.clone_from(&self.console);
            parcel.console_addresses.clone_from(&self.console_addresses);
            parcel.expire_after = self.expire_after;
        }
        differed
    }
}

/// What the node knows about one parcel when it screens it.
pub struct Known {
    /// Addressed to this node (by the route, where the node has one).
    pub for_me: bool,
    /// This node passed the action on, and where its reports go; `None`
    /// when it has no reverse path for it.
    pub route: Option<Route>,
}

impl Known {
    /// What node `local`, which looks up its routes by action with
    /// `route`, knows about `parcel`: its own route, where it has one,
    /// decides whether the parcel is for this node, not the parcel's
    /// unsigned `console` field.
    pub fn of(parcel: &Parcel, local: &[u8], route: impl Fn(&ActionId) -> Option<Route>) -> Self {
        let route = <[u8; 32]>::try_from(parcel.action_id.as_slice())
            .ok()
            .and_then(|id| route(&ActionId(id)));
        let for_me = match &route {
            Some(route) => route.console == local,
            None => parcel.console == local,
        };
        Self { for_me, route }
    }
}

/// Screens `parcels` (with what the node knows about each, in the same
/// order). `sent` tells what this node knows of an action as a console; it
/// is asked once per action, and only about verified reports addressed
/// here. The results of one delivery inflate to no more than a delivery
/// may carry.
pub fn screen(parcels: Vec<Parcel>, known: &[Known], sent: impl Fn(&ActionId) -> Sent) -> Screened {
    with_inflation_budget(MAX_DELIVERY_BYTES, || {
        screen_within_budget(parcels, known, sent)
    })
}

fn screen_within_budget(
    parcels: Vec<Parcel>,
    known: &[Known],
    sent: impl Fn(&ActionId) -> Sent,
) -> Screened {
    let mut screened = Screened::default();
    let (mut forged, mut unknown_path, mut unsolicited) = (0u64, 0u64, 0u64);
    let mut history_unreadable = 0u64;
    let mut unreadable: HashMap<&'static str, u64> = HashMap::new();
    let mut actions: HashMap<ActionId, Sent> = HashMap::new();
    for (mut parcel, known) in parcels.into_iter().zip(known) {
        let Ok(action_id) = <[u8; 32]>::try_from(parcel.action_id.as_slice()).map(ActionId) else {
            forged += 1;
            continue;
        };
        // Only reports for actions this node passed on go further: a peer
        // cannot make hops carry junk.
        if !known.for_me {
            let Some(route) = &known.route else {
                unknown_path += 1;
                continue;
            };
            // Only genuine ones, about the action they are routed by, and
            // routed as that action says. A hop reads only the header: the
            // rest is for the console.
            match reports::verify_header(&parcel.report) {
                Ok(header) if header.action_id == action_id => {
                    if route.impose(&mut parcel) {
                        screened.rerouted += 1;
                    }
                    screened.others.push(parcel);
                }
                _ => forged += 1,
            }
            continue;
        }
        let envelope = match reports::verify(&parcel.report) {
            Ok(envelope) if envelope.action_id == action_id => envelope,
            _ => {
                forged += 1;
                continue;
            }
        };
        let secret = match actions.entry(action_id).or_insert_with(|| sent(&action_id)) {
            Sent::NotByMe => {
                // Dropped, and acknowledged: nobody needs it again.
                unsolicited += 1;
                continue;
            }
            Sent::Unknown => {
                history_unreadable += 1;
                continue;
            }
            Sent::InTheClear => None,
            Sent::SealedTo(secret) => Some(&*secret),
        };
        match envelope.open(secret) {
            Ok(report) => screened.mine.push(report),
            // Signed by the agent it names, so no hop is to blame: dropped,
            // and acknowledged (sending it again would not help).
            Err(error) => *unreadable.entry(error.kind()).or_default() += 1,
        }
    }
    screened.penalty =
        penalties::FORGED * forged as f64 + penalties::UNSOLICITED * unsolicited as f64;
    let mut unreadable: Vec<_> = unreadable.into_iter().collect();
    unreadable.sort_unstable();
    for (reason, count) in [
        ("forged", forged),
        ("unknown_path", unknown_path),
        ("unsolicited", unsolicited),
        (HISTORY_UNREADABLE, history_unreadable),
    ]
    .into_iter()
    .chain(unreadable)
    {
        if count > 0 {
            screened.dropped.push((reason, count));
        }
    }
    // An honest hop that forgot a path (after a restart) is refused without
    // a penalty: it tries again and then dials the console itself. So is
    // one whose reports this console could not look up.
    if forged > 0 || unknown_path > 0 || history_unreadable > 0 {
        screened.refuse = true;
        screened.mine.clear();
        screened.others.clear();
        screened.rerouted = 0;
    }
    screened
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::PeerId;
    use libp2p::identity::Keypair;
    use mig_proto::AgentAttributes;
    use mig_proto::messages::{Envelope, ReportBody};
    use mig_proto::seal::Sealer;

    fn report(claimed: &Keypair, action: u8) -> Report {
        Report {
            action_id: ActionId([action; 32]),
            agent: PeerId::from_public_key(&claimed.public()).to_string(),
            attributes: AgentAttributes::default(),
            body: ReportBody::Ack,
        }
    }

    fn signed(envelope: &Envelope, signer: &Keypair, routed_as: u8) -> Parcel {
        Parcel {
            console: Vec::new(),
            console_addresses: Vec::new(),
            action_id: vec![routed_as; 32],
            expire_after: 0,
            report: reports::sign(envelope, signer).unwrap(),
        }
    }

    fn parcel(signer: &Keypair, claimed: &Keypair, action: u8, routed_as: u8) -> Parcel {
        let envelope = report(claimed, action).envelope(None).unwrap();
        signed(&envelope, signer, routed_as)
    }

    /// Action 1 was sent by this console in the clear, 4 sealed to
    /// `secret`'s key; no other.
    fn sent(secret: &SealSecret) -> impl Fn(&ActionId) -> Sent {
        let bytes = secret.to_bytes();
        move |id| match id.0[0] {
            1 => Sent::InTheClear,
            4 => Sent::SealedTo(SealSecret::from_bytes(*bytes)),
            _ => Sent::NotByMe,
        }
    }

    const HERE: Known = Known {
        for_me: true,
        route: None,
    };
    /// The route every test parcel (built with empty routing fields)
    /// already has.
    const ONWARD: Known = Known {
        for_me: false,
        route: Some(Route {
            console: Vec::new(),
            console_addresses: Vec::new(),
            expire_after: 0,
        }),
    };
    const NO_PATH: Known = Known {
        for_me: false,
        route: None,
    };

    #[test]
    fn genuine_parcels_are_sorted_and_nothing_else_passes() {
        let agent = Keypair::generate_ed25519();
        let secret = SealSecret::generate().unwrap();
        let sent = sent(&secret);

        let screened = screen(
            vec![
                parcel(&agent, &agent, 1, 1),
                parcel(&agent, &agent, 2, 2),
                parcel(&agent, &agent, 3, 3),
            ],
            &[HERE, ONWARD, HERE],
            &sent,
        );
        assert!(!screened.refuse);
        assert_eq!(screened.mine.len(), 1);
        assert_eq!(screened.others.len(), 1);
        assert_eq!(screened.dropped, vec![("unsolicited", 1)]);
        assert_eq!(screened.penalty, penalties::UNSOLICITED);

        // Signed by someone else than the agent it names; or routed as
        // another action than it is about: forged, the batch refused.
        let forger = Keypair::generate_ed25519();
        for forgery in [parcel(&forger, &agent, 1, 1), parcel(&agent, &agent, 2, 1)] {
            let screened = screen(
                vec![parcel(&agent, &agent, 1, 1), forgery],
                &[HERE, HERE],
                &sent,
            );
            assert!(screened.refuse);
            assert!(screened.mine.is_empty() && screened.others.is_empty());
            assert_eq!(screened.dropped, vec![("forged", 1)]);
            assert_eq!(screened.penalty, penalties::FORGED);
        }

        // A path this hop does not know: refused, without a penalty.
        let screened = screen(vec![parcel(&agent, &agent, 2, 2)], &[NO_PATH], &sent);
        assert!(screened.refuse);
        assert_eq!(screened.dropped, vec![("unknown_path", 1)]);
        assert_eq!(screened.penalty, 0.0);
    }

    #[test]
    fn sealed_reports_open_here_pass_hops_unread_and_the_rest_is_dropped() {
        let agent = Keypair::generate_ed25519();
        let secret = SealSecret::generate().unwrap();
        let sealer = Sealer::new(&secret.public()).unwrap();
        let sealed = signed(
            &report(&agent, 4).envelope(Some(&sealer)).unwrap(),
            &agent,
            4,
        );
        // For this console: opened. For another: passed on as it is.
        let screened = screen(
            vec![sealed.clone(), sealed.clone()],
            &[HERE, ONWARD],
            sent(&secret),
        );
        assert!(!screened.refuse);
        assert_eq!(screened.mine, vec![report(&agent, 4)]);
        assert_eq!(screened.others, vec![sealed.clone()]);

        // Sealed to another key; in the clear when it should be sealed;
        // sealed when the action named no key: dropped and acknowledged,
        // without blame for the hop that brought them.
        let stranger = Sealer::new(&SealSecret::generate().unwrap().public()).unwrap();
        let misdirected = signed(
            &report(&agent, 4).envelope(Some(&stranger)).unwrap(),
            &agent,
            4,
        );
        let unsealed = parcel(&agent, &agent, 4, 4);
        let sealed_to_clear = signed(
            &report(&agent, 1).envelope(Some(&sealer)).unwrap(),
            &agent,
            1,
        );
        let screened = screen(
            vec![misdirected, unsealed, sealed_to_clear],
            &[HERE, HERE, HERE],
            sent(&secret),
        );
        assert!(!screened.refuse);
        assert!(screened.mine.is_empty());
        assert_eq!(
            screened.dropped,
            vec![
                ("does_not_open", 1),
                ("not_sealed", 1),
                ("sealed_without_key", 1)
            ]
        );
        assert_eq!(screened.penalty, 0.0);

        // The history cannot be read: refused, to be sent again later.
        let screened = screen(vec![sealed], &[HERE], |_: &ActionId| Sent::Unknown);
        assert!(screened.refuse);
        assert_eq!(screened.dropped, vec![("history_unreadable", 1)]);
        assert_eq!(screened.penalty, 0.0);
    }

    #[test]
    fn a_hop_routes_a_parcel_as_its_action_says_not_as_the_parcel_says() {
        let agent = Keypair::generate_ed25519();
        let here = PeerId::random().to_bytes();
        let console = PeerId::random().to_bytes();
        let route = Route {
            console: console.clone(),
            console_addresses: vec!["/ip4/192.0.2.7/tcp/4001".into()],
            expire_after: 1_800_000_000,
        };
        let honest = {
            let mut parcel = parcel(&agent, &agent, 2, 2);
            parcel.console.clone_from(&console);
            parcel
                .console_addresses
                .clone_from(&route.console_addresses);
            parcel.expire_after = route.expire_after;
            parcel
        };
        // Rewritten on the way: another console, addresses the attacker
        // wants dialled, a longer life; and one made to look like it is
        // for this hop.
        let mut elsewhere = honest.clone();
        elsewhere.console = PeerId::random().to_bytes();
        elsewhere.console_addresses = vec!["/ip4/10.0.0.1/tcp/22".into(); 3];
        elsewhere.expire_after = i64::MAX;
        let mut to_me = honest.clone();
        to_me.console.clone_from(&here);

        let parcels = vec![honest.clone(), elsewhere, to_me];
        let known: Vec<Known> = parcels
            .iter()
            .map(|parcel| Known::of(parcel, &here, |_| Some(route.clone())))
            .collect();
        assert!(known.iter().all(|known| !known.for_me));
        let screened = screen(parcels, &known, |_: &ActionId| Sent::NotByMe);
        assert!(!screened.refuse);
        assert_eq!(screened.rerouted, 2);
        assert_eq!(screened.others, vec![honest.clone(); 3]);
        assert_eq!(screened.penalty, 0.0);

        // Without a route, the parcel's own field says whether it is ours.
        let known = Known::of(&honest, &console, |_| None);
        assert!(known.for_me && known.route.is_none());
    }
}
