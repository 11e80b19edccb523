//! Lexer and recursive-descent parser for target expressions.
//!
//! Precedence, loosest first: `OR`, `AND`, `NOT`, then a primary (a
//! comparison, a function, a constant or a parenthesized expression).
//! Keywords are case-insensitive. Every error carries the column it was
//! found at.

use ipnet::IpNet;

use super::{
    Attribute, EnvKey, Expr, LikePattern, LikeToken, MAX_DEPTH, MAX_REGEX_BYTES, MAX_TARGET_BYTES,
    ParseError, Predicate, TargetRegex,
};
use crate::action::closest;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Identifier(String),
    Text(String),
    Number(String),
    OpenParen,
    CloseParen,
    Comma,
    Dot,
    /// `->>`
    JsonText,
    /// `#>>`
    JsonPathText,
    Equals,
    NotEquals,
    Tilde,
    TildeStar,
    NotTilde,
    NotTildeStar,
    /// `<<=`
    ContainedIn,
    /// `<`, `>`, `<=`, `>=`: recognized only to explain they are unsupported.
    Ordering,
    End,
}

#[derive(Debug, Clone)]
struct Spanned {
    token: Token,
    start: usize,
    end: usize,
}

pub(super) fn is_plain_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Lexer<'a> {
    source: &'a str,
    position: usize,
}

impl<'a> Lexer<'a> {
    fn tokens(source: &'a str) -> Result<Vec<Spanned>, ParseError> {
        let mut lexer = Lexer {
            source,
            position: 0,
        };
        let mut tokens = Vec::new();
        loop {
            let spanned = lexer.next_token()?;
            let done = spanned.token == Token::End;
            tokens.push(spanned);
            if done {
                return Ok(tokens);
            }
        }
    }

    fn rest(&self) -> &'a str {
        &self.source[self.position..]
    }

    fn next_token(&mut self) -> Result<Spanned, ParseError> {
        let trimmed = self.rest().trim_start();
        self.position = self.source.len() - trimmed.len();
        let start = self.position;
        let Some(first) = trimmed.chars().next() else {
            return Ok(Spanned {
                token: Token::End,
                start,
                end: start,
            });
        };
        let symbols: [(&str, Token); 15] = [
            ("->>", Token::JsonText),
            ("#>>", Token::JsonPathText),
            ("<<=", Token::ContainedIn),
            ("!~*", Token::NotTildeStar),
            ("!=", Token::NotEquals),
            ("<>", Token::NotEquals),
            ("!~", Token::NotTilde),
            ("~*", Token::TildeStar),
            ("<=", Token::Ordering),
            (">=", Token::Ordering),
            ("=", Token::Equals),
            ("~", Token::Tilde),
            ("<", Token::Ordering),
            (">", Token::Ordering),
            ("(", Token::OpenParen),
        ];
        for (text, token) in symbols {
            if trimmed.starts_with(text) {
                self.position += text.len();
                return Ok(Spanned {
                    token,
                    start,
                    end: self.position,
                });
            }
        }
        let single = match first {
            ')' => Some(Token::CloseParen),
            ',' => Some(Token::Comma),
            '.' => Some(Token::Dot),
            _ => None,
        };
        if let Some(token) = single {
            self.position += 1;
            return Ok(Spanned {
                token,
                start,
                end: self.position,
            });
        }
        if first == '\'' {
            return self.string_literal(start);
        }
        if first == '"' {
            return Err(error_at(
                self.source,
                start,
                start + 1,
                "strings use single quotes, as in SQL: 'linux'",
            ));
        }
        if first.is_ascii_digit()
            || (first == '-' && trimmed[1..].starts_with(|c: char| c.is_ascii_digit()))
        {
            let length = 1 + trimmed[1..]
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(trimmed.len() - 1);
            self.position += length;
            return Ok(Spanned {
                token: Token::Number(trimmed[..length].to_owned()),
                start,
                end: self.position,
            });
        }
        if first.is_ascii_alphabetic() || first == '_' {
            let length = trimmed
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(trimmed.len());
            self.position += length;
            return Ok(Spanned {
                token: Token::Identifier(trimmed[..length].to_owned()),
                start,
                end: self.position,
            });
        }
        Err(error_at(
            self.source,
            start,
            start + first.len_utf8(),
            &format!("unexpected character '{first}'"),
        ))
    }

    /// `'...'` with `''` standing for one quote.
    fn string_literal(&mut self, start: usize) -> Result<Spanned, ParseError> {
        let mut value = String::new();
        let mut chars = self.source[start + 1..].char_indices();
        while let Some((offset, c)) = chars.next() {
            if c == '\'' {
                if self.source[start + 1 + offset + 1..].starts_with('\'') {
                    value.push('\'');
                    chars.next();
                    continue;
                }
                self.position = start + 1 + offset + 1;
                return Ok(Spanned {
                    token: Token::Text(value),
                    start,
                    end: self.position,
                });
            }
            value.push(c);
        }
        Err(error_at(
            self.source,
            start,
            self.source.len(),
            "this string is never closed",
        ))
    }
}

/// Builds an error with a caret line under `start..end` of `source`.
fn error_at(source: &str, start: usize, end: usize, message: &str) -> ParseError {
    const CONTEXT_CHARS: usize = 40;
    let column = source[..start].chars().count() + 1;
    let line_start_chars = column.saturating_sub(1 + CONTEXT_CHARS);
    let shown: String = source
        .chars()
        .skip(line_start_chars)
        .take(CONTEXT_CHARS * 2)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let prefix = if line_start_chars > 0 { "…" } else { "" };
    let caret_offset = column - 1 - line_start_chars + prefix.chars().count();
    let width = source[start..end.max(start)]
        .chars()
        .count()
        .clamp(1, CONTEXT_CHARS);
    let excerpt = format!(
        "  {prefix}{shown}\n  {}{}",
        " ".repeat(caret_offset),
        "^".repeat(width)
    );
    ParseError {
        column,
        message: message.to_owned(),
        excerpt,
    }
}

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<Spanned>,
    index: usize,
    depth: usize,
}

pub(super) fn parse(source: &str) -> Result<Expr, ParseError> {
    if source.len() > MAX_TARGET_BYTES {
        return Err(ParseError {
            column: 1,
            message: format!(
                "the target is {} bytes long; the limit is {MAX_TARGET_BYTES}",
                source.len()
            ),
            excerpt: String::new(),
        });
    }
    let tokens = Lexer::tokens(source)?;
    let mut parser = Parser {
        source,
        tokens,
        index: 0,
        depth: 0,
    };
    if parser.peek() == &Token::End {
        return Err(parser.error_here("the target is empty; write 'true' to target every agent"));
    }
    let expr = parser.or_expression()?;
    match parser.peek() {
        Token::End => Ok(expr),
        Token::CloseParen => Err(parser.error_here("this ')' has no matching '('")),
        _ => Err(parser.error_here("expected AND, OR or the end of the target")),
    }
}

fn keyword_is(token: &Token, keyword: &str) -> bool {
    matches!(token, Token::Identifier(word) if word.eq_ignore_ascii_case(keyword))
}

const KEYWORDS: &[&str] = &[
    "and", "or", "not", "like", "ilike", "in", "is", "null", "true", "false", "within", "found",
    "notfound",
];

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.index].token
    }

    fn peek_at(&self, offset: usize) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.index + offset).min(last)].token
    }

    fn advance(&mut self) -> Spanned {
        let spanned = self.tokens[self.index].clone();
        if self.index < self.tokens.len() - 1 {
            self.index += 1;
        }
        spanned
    }

    fn error_here(&self, message: &str) -> ParseError {
        let spanned = &self.tokens[self.index];
        error_at(self.source, spanned.start, spanned.end, message)
    }

    fn error_over(&self, spanned: &Spanned, message: &str) -> ParseError {
        error_at(self.source, spanned.start, spanned.end, message)
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if keyword_is(self.peek(), keyword) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<Spanned, ParseError> {
        if self.peek() == &token {
            Ok(self.advance())
        } else {
            Err(self.error_here(&format!("expected {what}")))
        }
    }

    fn descend(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here(&format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn or_expression(&mut self) -> Result<Expr, ParseError> {
        let mut operands = vec![self.and_expression()?];
        while self.eat_keyword("or") {
            operands.push(self.and_expression()?);
        }
        Ok(if operands.len() == 1 {
            operands.remove(0)
        } else {
            Expr::Or(operands)
        })
    }

    fn and_expression(&mut self) -> Result<Expr, ParseError> {
        let mut operands = vec![self.not_expression()?];
        while self.eat_keyword("and") {
            operands.push(self.not_expression()?);
        }
        Ok(if operands.len() == 1 {
            operands.remove(0)
        } else {
            Expr::And(operands)
        })
    }

    fn not_expression(&mut self) -> Result<Expr, ParseError> {
        if self.eat_keyword("not") {
            self.descend()?;
            let inner = self.not_expression()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        match self.peek().clone() {
            Token::OpenParen => {
                let open = self.advance();
                self.descend()?;
                if self.peek() == &Token::CloseParen {
                    return Err(self.error_here("expected an expression inside the parentheses"));
                }
                let inner = self.or_expression()?;
                self.depth -= 1;
                if self.peek() != &Token::CloseParen {
                    return Err(match self.peek() {
                        Token::End => self.error_over(&open, "this '(' is never closed"),
                        _ => self.error_here("expected ')', AND or OR"),
                    });
                }
                self.advance();
                Ok(inner)
            }
            Token::Identifier(word) if word.eq_ignore_ascii_case("true") => {
                self.advance();
                Ok(Expr::Constant(true))
            }
            Token::Identifier(word) if word.eq_ignore_ascii_case("false") => {
                self.advance();
                Ok(Expr::Constant(false))
            }
            Token::Identifier(word)
                if (word.eq_ignore_ascii_case("found")
                    || word.eq_ignore_ascii_case("notfound"))
                    && self.peek_at(1) == &Token::OpenParen =>
            {
                self.advance();
                self.advance();
                let found = word.eq_ignore_ascii_case("found");
                let argument = self.advance();
                let Token::Text(text) = &argument.token else {
                    return Err(self.error_over(&argument, "expected an action id in quotes"));
                };
                let id = text.parse().map_err(|_| {
                    self.error_over(&argument, "an action id is 64 hexadecimal characters")
                })?;
                self.expect(Token::CloseParen, "')' after the action id")?;
                Ok(if found {
                    Expr::Found(id)
                } else {
                    Expr::NotFound(id)
                })
            }
            Token::Identifier(_) => {
                let attribute = self.attribute()?;
                let predicate = self.predicate()?;
                Ok(Expr::Compare {
                    attribute,
                    predicate,
                })
            }
            Token::End => Err(self.error_here("the target ends where an expression was expected")),
            _ => Err(self.error_here("expected an attribute, NOT, '(', true, false or found(...)")),
        }
    }

    fn attribute(&mut self) -> Result<Attribute, ParseError> {
        let first = self.advance();
        let Token::Identifier(word) = &first.token else {
            return Err(self.error_over(&first, "expected an attribute"));
        };
        let mut name = word.to_ascii_lowercase();
        let mut name_span = first.clone();
        // MIG's targets qualify columns with the table: agents.os.
        if name == "agents" && self.peek() == &Token::Dot {
            self.advance();
            name_span = self.advance();
            let Token::Identifier(word) = &name_span.token else {
                return Err(self.error_over(&name_span, "expected an attribute after 'agents.'"));
            };
            name = word.to_ascii_lowercase();
        }
        match name.as_str() {
            "environment" | "env" => {
                let key = self.member_key("environment")?;
                let lowered = key.1.to_ascii_lowercase();
                match lowered.as_str() {
                    "os" => Ok(Attribute::Os),
                    "arch" => Ok(Attribute::Arch),
                    _ => EnvKey::ALL
                        .into_iter()
                        .find(|candidate| candidate.as_str() == lowered)
                        .map(Attribute::Env)
                        .ok_or_else(|| {
                            let mut known: Vec<&str> =
                                EnvKey::ALL.iter().map(|key| key.as_str()).collect();
                            known.extend(["os", "arch"]);
                            self.unknown_name(&key.0, "environment key", &lowered, &known)
                        }),
                }
            }
            "tags" => Ok(Attribute::Tag(self.member_key("tags")?.1)),
            "name" | "hostname" => Ok(Attribute::Name),
            "os" => Ok(Attribute::Os),
            "arch" => Ok(Attribute::Arch),
            "version" => Ok(Attribute::Version),
            "id" => Ok(Attribute::Id),
            "peer" => Ok(Attribute::Peer),
            "mode" => Ok(Attribute::Mode),
            "status" => Ok(Attribute::Status),
            "queueloc" => Ok(Attribute::QueueLoc),
            "addresses" => Ok(Attribute::Env(EnvKey::Addresses)),
            _ if KEYWORDS.contains(&name.as_str()) => Err(self.error_over(
                &name_span,
                &format!("expected an attribute before '{word}'"),
            )),
            _ => Err(self.unknown_name(&name_span, "attribute", &name, ATTRIBUTE_NAMES)),
        }
    }

    fn unknown_name(&self, span: &Spanned, what: &str, name: &str, known: &[&str]) -> ParseError {
        let hint = match closest(name, known) {
            Some(suggestion) => format!(" (did you mean '{suggestion}'?)"),
            None => format!("; known: {}", known.join(", ")),
        };
        self.error_over(span, &format!("unknown {what} '{name}'{hint}"))
    }

    /// After `env`/`tags`: `.key`, `->>'key'` or `#>>'{key}'`.
    fn member_key(&mut self, owner: &str) -> Result<(Spanned, String), ParseError> {
        let operator = self.advance();
        let key_token = self.advance();
        let key = match (&operator.token, &key_token.token) {
            (Token::Dot, Token::Identifier(key)) => key.clone(),
            (Token::JsonText, Token::Text(key)) => key.clone(),
            (Token::JsonPathText, Token::Text(path)) => {
                let inner = path
                    .strip_prefix('{')
                    .and_then(|rest| rest.strip_suffix('}'));
                match inner {
                    Some(key) if !key.is_empty() && !key.contains(',') => key.to_owned(),
                    _ => {
                        return Err(self.error_over(
                            &key_token,
                            "expected a one-element path like '{operator}'",
                        ));
                    }
                }
            }
            _ => {
                return Err(self.error_over(
                    &operator,
                    &format!("expected {owner}.key, {owner}->>'key' or {owner}#>>'{{key}}'"),
                ));
            }
        };
        if key.is_empty() {
            return Err(self.error_over(&key_token, "the key is empty"));
        }
        Ok((key_token, key))
    }

    fn predicate(&mut self) -> Result<Predicate, ParseError> {
        let operator = self.advance();
        match &operator.token {
            Token::Equals => Ok(Predicate::Equals(self.value()?)),
            Token::NotEquals => Ok(Predicate::NotEquals(self.value()?)),
            Token::Tilde => self.regex(false, false),
            Token::TildeStar => self.regex(true, false),
            Token::NotTilde => self.regex(false, true),
            Token::NotTildeStar => self.regex(true, true),
            Token::ContainedIn => self.within(false),
            Token::Ordering => Err(self.error_over(
                &operator,
                "ordering comparisons are not supported; use =, !=, LIKE, ~, IN or WITHIN",
            )),
            Token::Identifier(word) => {
                let word = word.to_ascii_lowercase();
                let negated = word == "not";
                let keyword_span = if negated {
                    self.advance()
                } else {
                    operator.clone()
                };
                let keyword = match &keyword_span.token {
                    Token::Identifier(word) => word.to_ascii_lowercase(),
                    _ => String::new(),
                };
                match keyword.as_str() {
                    "like" => self.like(false, negated),
                    "ilike" => self.like(true, negated),
                    "in" => self.in_list(negated),
                    "within" => self.within(negated),
                    "is" if !negated => {
                        let negated = self.eat_keyword("not");
                        if !self.eat_keyword("null") {
                            return Err(self.error_here("expected NULL after IS"));
                        }
                        Ok(Predicate::IsNull { negated })
                    }
                    _ => Err(self.error_over(&keyword_span, COMPARISON_EXPECTED)),
                }
            }
            _ => Err(self.error_over(&operator, COMPARISON_EXPECTED)),
        }
    }

    fn value(&mut self) -> Result<String, ParseError> {
        let spanned = self.advance();
        match &spanned.token {
            Token::Text(text) | Token::Number(text) => Ok(text.clone()),
            Token::Identifier(word)
                if word.eq_ignore_ascii_case("true") || word.eq_ignore_ascii_case("false") =>
            {
                Ok(word.to_ascii_lowercase())
            }
            Token::Identifier(word) if word.eq_ignore_ascii_case("select") => Err(self.error_over(
                &spanned,
                "subqueries are not supported; to target agents by an earlier action's results use found('<action id>')",
            )),
            Token::End => Err(self.error_over(&spanned, "expected a value here")),
            _ => Err(self.error_over(&spanned, "expected a value in single quotes")),
        }
    }

    fn text(&mut self, what: &str) -> Result<(Spanned, String), ParseError> {
        let spanned = self.advance();
        match &spanned.token {
            Token::Text(text) => {
                let text = text.clone();
                Ok((spanned, text))
            }
            _ => Err(self.error_over(&spanned, &format!("expected {what} in single quotes"))),
        }
    }

    fn like(&mut self, case_insensitive: bool, negated: bool) -> Result<Predicate, ParseError> {
        let (_, source) = self.text("a pattern")?;
        Ok(Predicate::Like {
            pattern: LikePattern::new(source, case_insensitive),
            negated,
        })
    }

    fn regex(&mut self, case_insensitive: bool, negated: bool) -> Result<Predicate, ParseError> {
        let (span, source) = self.text("a regular expression")?;
        let regex = regex::RegexBuilder::new(&source)
            .case_insensitive(case_insensitive)
            .size_limit(MAX_REGEX_BYTES)
            .dfa_size_limit(MAX_REGEX_BYTES)
            .build()
            .map_err(|error| {
                let reason = match error {
                    regex::Error::CompiledTooBig(_) => {
                        format!(
                            "this regular expression compiles to more than {MAX_REGEX_BYTES} bytes"
                        )
                    }
                    other => format!("invalid regular expression: {other}"),
                };
                self.error_over(&span, &reason.replace('\n', " "))
            })?;
        Ok(Predicate::Matches {
            regex: TargetRegex {
                source,
                case_insensitive,
                regex,
            },
            negated,
        })
    }

    fn within(&mut self, negated: bool) -> Result<Predicate, ParseError> {
        let (span, text) = self.text("a network like '10.0.0.0/8'")?;
        let network = parse_network(&text).ok_or_else(|| {
            self.error_over(
                &span,
                "expected an IP network like '10.0.0.0/8' or 'fd00::/8'",
            )
        })?;
        Ok(Predicate::Within { network, negated })
    }

    fn in_list(&mut self, negated: bool) -> Result<Predicate, ParseError> {
        self.expect(Token::OpenParen, "'(' to open the list")?;
        let mut values = vec![self.value()?];
        while self.peek() == &Token::Comma {
            self.advance();
            values.push(self.value()?);
        }
        self.expect(Token::CloseParen, "',' or ')' to close the list")?;
        Ok(Predicate::In { values, negated })
    }
}

const COMPARISON_EXPECTED: &str =
    "expected a comparison: =, !=, LIKE, ILIKE, ~, ~*, !~, IN (...), WITHIN '<network>' or IS NULL";

const ATTRIBUTE_NAMES: &[&str] = &[
    "name",
    "hostname",
    "os",
    "arch",
    "version",
    "id",
    "peer",
    "mode",
    "status",
    "queueloc",
    "addresses",
    "environment",
    "env",
    "tags",
];

/// An IP network, or a single address as a host network.
pub(super) fn parse_network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

impl LikePattern {
    pub(super) fn new(source: String, case_insensitive: bool) -> Self {
        let mut tokens = Vec::new();
        let mut chars = source.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '%' => LikeToken::AnyRun,
                '_' => LikeToken::AnyOne,
                // A trailing backslash stands for itself.
                '\\' => LikeToken::Literal(chars.next().unwrap_or('\\')),
                other => LikeToken::Literal(other),
            });
        }
        if case_insensitive {
            tokens = tokens
                .into_iter()
                .flat_map(|token| match token {
                    LikeToken::Literal(c) => c.to_lowercase().map(LikeToken::Literal).collect(),
                    other => vec![other],
                })
                .collect();
        }
        Self {
            source,
            case_insensitive,
            tokens,
        }
    }
}
