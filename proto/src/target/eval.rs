//! Evaluating a target against one agent.
//!
//! Two-valued logic with one SQL habit kept: a comparison on an attribute
//! the agent does not have is false, negated comparisons included
//! (`tags.team != 'red'` does not select agents without a team tag); ask
//! for absence with `IS NULL`. On a multi-valued attribute (addresses) a
//! comparison holds if it holds for any value; its negated form holds if it
//! holds for none.

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{Attribute, Expr, LikePattern, LikeToken, Predicate};
use crate::ids::ActionId;

/// What a target is evaluated against: one agent's attributes and memory.
pub trait TargetContext {
    /// The attribute's values; empty when the agent does not have it.
    fn values(&self, attribute: &Attribute) -> Vec<Cow<'_, str>>;

    /// Whether this agent ran `action` and found something (`Some(true)`),
    /// ran it and found nothing (`Some(false)`), or has no record of it.
    fn outcome_of(&self, action: &ActionId) -> Option<bool>;
}

/// Convenience for implementors: a single optional value.
pub fn values_of(value: Option<&str>) -> Vec<Cow<'_, str>> {
    value.map(Cow::Borrowed).into_iter().collect()
}

pub(super) fn evaluate(expr: &Expr, context: &dyn TargetContext) -> bool {
    match expr {
        Expr::Constant(value) => *value,
        Expr::Not(inner) => !evaluate(inner, context),
        Expr::And(items) => items.iter().all(|item| evaluate(item, context)),
        Expr::Or(items) => items.iter().any(|item| evaluate(item, context)),
        Expr::Found(id) => context.outcome_of(id) == Some(true),
        Expr::NotFound(id) => context.outcome_of(id) == Some(false),
        Expr::Compare {
            attribute,
            predicate,
        } => compare(&context.values(attribute), predicate),
    }
}

fn compare(values: &[Cow<'_, str>], predicate: &Predicate) -> bool {
    if let Predicate::IsNull { negated } = predicate {
        return values.is_empty() != *negated;
    }
    if values.is_empty() {
        return false;
    }
    let any = |test: &dyn Fn(&str) -> bool| values.iter().any(|value| test(value));
    match predicate {
        Predicate::Equals(expected) => any(&|value| value == expected),
        Predicate::NotEquals(expected) => !any(&|value| value == expected),
        Predicate::Like { pattern, negated } => any(&|value| pattern.matches(value)) != *negated,
        Predicate::In {
            values: list,
            negated,
        } => any(&|value| list.iter().any(|item| item == value)) != *negated,
        Predicate::Matches { regex, negated } => {
            any(&|value| regex.regex.is_match(value)) != *negated
        }
        Predicate::Within { network, negated } => {
            any(&|value| address_of(value).is_some_and(|address| network.contains(&address)))
                != *negated
        }
        Predicate::IsNull { .. } => false,
    }
}

/// Addresses are kept as MIG kept them, `10.0.0.5/24`; a bare address works
/// too.
fn address_of(value: &str) -> Option<IpAddr> {
    value
        .parse::<IpNet>()
        .map(|network| network.addr())
        .or_else(|_| value.parse::<IpAddr>())
        .ok()
}

impl LikePattern {
    /// Iterative wildcard matching: on a mismatch, retry from the last `%`
    /// one character further. Quadratic at worst, on bounded inputs.
    pub(super) fn matches(&self, value: &str) -> bool {
        let lowered;
        let text: Vec<char> = if self.case_insensitive {
            lowered = value.to_lowercase();
            lowered.chars().collect()
        } else {
            value.chars().collect()
        };
        let pattern = &self.tokens;
        let (mut at_pattern, mut at_text) = (0, 0);
        let mut last_run: Option<(usize, usize)> = None;
        while at_text < text.len() {
            match pattern.get(at_pattern) {
                Some(LikeToken::AnyRun) => {
                    last_run = Some((at_pattern, at_text));
                    at_pattern += 1;
                }
                Some(LikeToken::AnyOne) => {
                    at_pattern += 1;
                    at_text += 1;
                }
                Some(LikeToken::Literal(c)) if *c == text[at_text] => {
                    at_pattern += 1;
                    at_text += 1;
                }
                _ => match last_run {
                    Some((run_pattern, run_text)) => {
                        last_run = Some((run_pattern, run_text + 1));
                        at_pattern = run_pattern + 1;
                        at_text = run_text + 1;
                    }
                    None => return false,
                },
            }
        }
        pattern[at_pattern..]
            .iter()
            .all(|token| *token == LikeToken::AnyRun)
    }
}
