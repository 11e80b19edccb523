//! The target expression: which agents an action is for.
//!
//! Each agent evaluates the (signed) target against its own attributes; the
//! console evaluates the same expression over its roster to predict how many
//! agents will answer. The grammar is in `docs/targets.md`; it accepts the
//! SQL fragments MIG users wrote (`agents.os = 'linux'`,
//! `environment->>'ident' LIKE '%Ubuntu%'`, `tags->>'operator' = 'opsec'`)
//! and adds regexes, `IN`, CIDR membership, and `found('<action id>')`.
//!
//! Bounded on purpose: [`MAX_TARGET_BYTES`] of text, [`MAX_DEPTH`] levels
//! of nesting, compiled regexes of at most [`MAX_REGEX_BYTES`]; the regex
//! engine runs in linear time, and `LIKE` matching is iterative.

mod eval;
mod parse;

use std::fmt;

use ipnet::IpNet;

pub use eval::{TargetContext, values_of};

use crate::ids::ActionId;

/// Longest target accepted, in bytes.
pub const MAX_TARGET_BYTES: usize = 16 * 1024;
/// Deepest nesting of parentheses and `NOT` accepted.
pub const MAX_DEPTH: usize = 32;
/// Largest compiled regex accepted (and its lazy DFA cache).
pub const MAX_REGEX_BYTES: usize = 1 << 20;

/// A parsed target expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Constant(bool),
    Not(Box<Expr>),
    /// Two or more operands, all of which must hold.
    And(Vec<Expr>),
    /// Two or more operands, one of which must hold.
    Or(Vec<Expr>),
    Compare {
        attribute: Attribute,
        predicate: Predicate,
    },
    /// The agent ran that action and found something.
    Found(ActionId),
    /// The agent ran that action and found nothing.
    NotFound(ActionId),
}

/// What an agent can be asked about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attribute {
    Name,
    Os,
    Arch,
    Version,
    /// The agent's stable id (its libp2p peer id, as text).
    Id,
    Peer,
    Mode,
    Status,
    /// MIG's `<os>.<id>` queue location, for old targets.
    QueueLoc,
    Env(EnvKey),
    Tag(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvKey {
    Ident,
    Kernel,
    Init,
    Addresses,
    PublicIp,
    IsProxied,
    Proxy,
}

impl EnvKey {
    pub const ALL: [EnvKey; 7] = [
        EnvKey::Ident,
        EnvKey::Kernel,
        EnvKey::Init,
        EnvKey::Addresses,
        EnvKey::PublicIp,
        EnvKey::IsProxied,
        EnvKey::Proxy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EnvKey::Ident => "ident",
            EnvKey::Kernel => "kernel",
            EnvKey::Init => "init",
            EnvKey::Addresses => "addresses",
            EnvKey::PublicIp => "publicip",
            EnvKey::IsProxied => "isproxied",
            EnvKey::Proxy => "proxy",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    Equals(String),
    NotEquals(String),
    Like { pattern: LikePattern, negated: bool },
    In { values: Vec<String>, negated: bool },
    Matches { regex: TargetRegex, negated: bool },
    Within { network: IpNet, negated: bool },
    IsNull { negated: bool },
}

/// A SQL `LIKE` pattern: `%` any run of characters, `_` any one, `\` escapes.
#[derive(Debug, Clone)]
pub struct LikePattern {
    source: String,
    case_insensitive: bool,
    tokens: Vec<LikeToken>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LikeToken {
    Literal(char),
    AnyOne,
    AnyRun,
}

impl PartialEq for LikePattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.case_insensitive == other.case_insensitive
    }
}

/// A regex with its source, compared by source.
#[derive(Debug, Clone)]
pub struct TargetRegex {
    source: String,
    case_insensitive: bool,
    regex: regex::Regex,
}

impl PartialEq for TargetRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.case_insensitive == other.case_insensitive
    }
}

/// Where and why a target failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}\n{excerpt}")]
pub struct ParseError {
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
    /// The offending part of the source with a caret line under it.
    pub excerpt: String,
}

impl Target {
    /// Parses a target expression.
    pub fn parse(source: &str) -> Result<Self, ParseError> {
        parse::parse(source).map(|expr| Self { expr })
    }

    /// The target that selects every agent.
    pub fn everyone() -> Self {
        Self {
            expr: Expr::Constant(true),
        }
    }

    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Whether the agent described by `context` is targeted.
    pub fn matches(&self, context: &dyn TargetContext) -> bool {
        eval::evaluate(&self.expr, context)
    }

    /// The action ids that `found(...)`/`notfound(...)` refer to.
    pub fn referenced_actions(&self) -> Vec<ActionId> {
        let mut ids = Vec::new();
        collect_actions(&self.expr, &mut ids);
        ids
    }
}

fn collect_actions(expr: &Expr, ids: &mut Vec<ActionId>) {
    match expr {
        Expr::Found(id) | Expr::NotFound(id) => ids.push(*id),
        Expr::Not(inner) => collect_actions(inner, ids),
        Expr::And(items) | Expr::Or(items) => {
            items.iter().for_each(|item| collect_actions(item, ids))
        }
        Expr::Constant(_) | Expr::Compare { .. } => {}
    }
}

impl From<Expr> for Target {
    fn from(expr: Expr) -> Self {
        Self { expr }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(formatter)
    }
}

/// Prints the expression so that parsing it again gives the same tree:
/// parentheses exactly where the tree needs them.
impl fmt::Display for Expr {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Constant(true) => formatter.write_str("true"),
            Expr::Constant(false) => formatter.write_str("false"),
            Expr::Not(inner) => {
                formatter.write_str("NOT ")?;
                write_operand(
                    formatter,
                    inner,
                    matches!(**inner, Expr::And(_) | Expr::Or(_)),
                )
            }
            Expr::And(items) => write_joined(formatter, items, " AND ", |item| {
                matches!(item, Expr::And(_) | Expr::Or(_))
            }),
            Expr::Or(items) => {
                write_joined(formatter, items, " OR ", |item| matches!(item, Expr::Or(_)))
            }
            Expr::Compare {
                attribute,
                predicate,
            } => write!(formatter, "{attribute} {predicate}"),
            Expr::Found(id) => write!(formatter, "found('{id}')"),
            Expr::NotFound(id) => write!(formatter, "notfound('{id}')"),
        }
    }
}

fn write_operand(
    formatter: &mut fmt::Formatter<'_>,
    expr: &Expr,
    parenthesize: bool,
) -> fmt::Result {
    if parenthesize {
        write!(formatter, "({expr})")
    } else {
        write!(formatter, "{expr}")
    }
}

fn write_joined(
    formatter: &mut fmt::Formatter<'_>,
    items: &[Expr],
    separator: &str,
    needs_parentheses: impl Fn(&Expr) -> bool,
) -> fmt::Result {
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            formatter.write_str(separator)?;
        }
        write_operand(formatter, item, needs_parentheses(item))?;
    }
    Ok(())
}

impl fmt::Display for Attribute {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attribute::Name => formatter.write_str("name"),
            Attribute::Os => formatter.write_str("os"),
            Attribute::Arch => formatter.write_str("arch"),
            Attribute::Version => formatter.write_str("version"),
            Attribute::Id => formatter.write_str("id"),
            Attribute::Peer => formatter.write_str("peer"),
            Attribute::Mode => formatter.write_str("mode"),
            Attribute::Status => formatter.write_str("status"),
            Attribute::QueueLoc => formatter.write_str("queueloc"),
            Attribute::Env(key) => write!(formatter, "env.{}", key.as_str()),
            Attribute::Tag(key) if parse::is_plain_identifier(key) => {
                write!(formatter, "tags.{key}")
            }
            Attribute::Tag(key) => write!(formatter, "tags->>{}", Quoted(key)),
        }
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = |negated: bool| if negated { "NOT " } else { "" };
        match self {
            Predicate::Equals(value) => write!(formatter, "= {}", Quoted(value)),
            Predicate::NotEquals(value) => write!(formatter, "!= {}", Quoted(value)),
            Predicate::Like { pattern, negated } => {
                let keyword = if pattern.case_insensitive {
                    "ILIKE"
                } else {
                    "LIKE"
                };
                write!(
                    formatter,
                    "{}{keyword} {}",
                    not(*negated),
                    Quoted(&pattern.source)
                )
            }
            Predicate::In { values, negated } => {
                write!(formatter, "{}IN (", not(*negated))?;
                for (index, value) in values.iter().enumerate() {
                    if index > 0 {
                        formatter.write_str(", ")?;
                    }
                    write!(formatter, "{}", Quoted(value))?;
                }
                formatter.write_str(")")
            }
            Predicate::Matches { regex, negated } => {
                let operator = match (*negated, regex.case_insensitive) {
                    (false, false) => "~",
                    (false, true) => "~*",
                    (true, false) => "!~",
                    (true, true) => "!~*",
                };
                write!(formatter, "{operator} {}", Quoted(&regex.source))
            }
            Predicate::Within { network, negated } => {
                write!(formatter, "{}WITHIN '{network}'", not(*negated))
            }
            Predicate::IsNull { negated } => write!(formatter, "IS {}NULL", not(*negated)),
        }
    }
}

/// A string literal in single quotes, inner quotes doubled (SQL style).
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "'{}'", self.0.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests;
