//! List filters in the syntax of Google's `filter` parameter (AIP-160, as Secret Manager uses it):
//! `name:db-`, `labels.env=prod`, `labels.env:*`, `create_time>2024-01-01T00:00:00Z`,
//! `state:ENABLED`, with `AND`, `OR`, `NOT`, `-` and parentheses.

use chrono::{DateTime, Utc};

use super::{StateError, StateResult};

/// A resource that a filter can look into: each field path yields the values it holds.
pub trait Filterable {
    /// The values at a snake_case field path (`["labels", "env"]`); empty when absent.
    fn values(&self, path: &[&str]) -> Vec<String>;
}

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    All,
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// A bare value: matches resources whose name contains it.
    Bare(String),
    Compare {
        path: Vec<String>,
        op: Op,
        value: String,
    },
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Has,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Op(Op),
    Open,
    Close,
    Minus,
}

impl Filter {
    /// Parses a filter; an empty string matches everything.
    pub fn parse(text: &str) -> StateResult<Filter> {
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return Ok(Filter::All);
        }
        let mut parser = Parser { tokens, pos: 0 };
        let filter = parser.or()?;
        if parser.pos != parser.tokens.len() {
            return Err(invalid(text, "unexpected text after the expression"));
        }
        Ok(filter)
    }

    /// Whether `item` passes the filter.
    pub fn matches(&self, item: &impl Filterable) -> bool {
        match self {
            Filter::All => true,
            Filter::And(a, b) => a.matches(item) && b.matches(item),
            Filter::Or(a, b) => a.matches(item) || b.matches(item),
            Filter::Not(inner) => !inner.matches(item),
            Filter::Bare(value) => {
                let value = value.to_lowercase();
                item.values(&["name"])
                    .iter()
                    .any(|v| v.to_lowercase().contains(&value))
            }
            Filter::Compare { path, op, value } => {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                compare(&item.values(&path), *op, value)
            }
        }
    }
}

fn compare(values: &[String], op: Op, wanted: &str) -> bool {
    match op {
        Op::Has if wanted == "*" => !values.is_empty(),
        Op::Has => {
            let wanted = wanted.to_lowercase();
            values.iter().any(|v| v.to_lowercase().contains(&wanted))
        }
        Op::Eq => values.iter().any(|v| v == wanted),
        Op::Ne => values.iter().all(|v| v != wanted),
        Op::Lt | Op::Le | Op::Gt | Op::Ge => values.iter().any(|v| {
            let ordering = order(v, wanted);
            match op {
                Op::Lt => ordering.is_lt(),
                Op::Le => ordering.is_le(),
                Op::Gt => ordering.is_gt(),
                _ => ordering.is_ge(),
            }
        }),
    }
}

/// Orders as timestamps when both parse as RFC 3339, as numbers when both are numbers, else as text.
fn order(a: &str, b: &str) -> std::cmp::Ordering {
    let time = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc));
    if let (Ok(x), Ok(y)) = (time(a), time(b)) {
        return x.cmp(&y);
    }
    if let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>()) {
        return x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
    }
    a.cmp(b)
}

fn invalid(text: &str, why: &str) -> StateError {
    StateError::invalid(format!("Invalid filter [{text}]: {why}."))
}

fn tokenize(text: &str) -> StateResult<Vec<Token>> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            '-' if tokens.last().is_none_or(|t| !matches!(t, Token::Op(_))) => {
                tokens.push(Token::Minus);
                i += 1;
            }
            '"' | '\'' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(invalid(text, "unterminated quoted string")),
                        Some('\\') => {
                            if let Some(next) = chars.get(i + 1) {
                                value.push(*next);
                            }
                            i += 2;
                        }
                        Some(q) if *q == c => {
                            i += 1;
                            break;
                        }
                        Some(other) => {
                            value.push(*other);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            ':' | '=' | '!' | '<' | '>' => {
                let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
                let (op, len) = match two.as_str() {
                    "!=" => (Op::Ne, 2),
                    "<=" => (Op::Le, 2),
                    ">=" => (Op::Ge, 2),
                    _ => match c {
                        ':' => (Op::Has, 1),
                        '=' => (Op::Eq, 1),
                        '<' => (Op::Lt, 1),
                        '>' => (Op::Gt, 1),
                        _ => return Err(invalid(text, "'!' must be followed by '='")),
                    },
                };
                tokens.push(Token::Op(op));
                i += len;
                // The value after an operator runs to the next space or parenthesis, colons and all.
                while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                    i += 1;
                }
                if chars.get(i).is_some_and(|c| *c != '"' && *c != '\'') {
                    let start = i;
                    while chars
                        .get(i)
                        .is_some_and(|c| !c.is_whitespace() && *c != '(' && *c != ')')
                    {
                        i += 1;
                    }
                    tokens.push(Token::Word(chars[start..i].iter().collect()));
                }
            }
            _ => {
                let start = i;
                while chars.get(i).is_some_and(|c| {
                    !c.is_whitespace() && !matches!(c, '(' | ')' | ':' | '=' | '!' | '<' | '>')
                }) {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == keyword)
    }

    fn or(&mut self) -> StateResult<Filter> {
        let mut left = self.and()?;
        while self.is_keyword("OR") {
            self.pos += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> StateResult<Filter> {
        let mut left = self.unary()?;
        loop {
            if self.is_keyword("AND") {
                self.pos += 1;
            } else if self.is_keyword("OR") || matches!(self.peek(), None | Some(Token::Close)) {
                return Ok(left);
            }
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> StateResult<Filter> {
        match self.peek().cloned() {
            Some(Token::Minus) => {
                self.pos += 1;
                Ok(Filter::Not(Box::new(self.unary()?)))
            }
            Some(Token::Word(w)) if w == "NOT" => {
                self.pos += 1;
                Ok(Filter::Not(Box::new(self.unary()?)))
            }
            Some(Token::Open) => {
                self.pos += 1;
                let inner = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return Err(StateError::invalid("Invalid filter: missing ')'."));
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Token::Word(word)) => {
                self.pos += 1;
                if let Some(Token::Op(op)) = self.peek().cloned() {
                    self.pos += 1;
                    let value = match self.peek().cloned() {
                        Some(Token::Word(v)) | Some(Token::Quoted(v)) => {
                            self.pos += 1;
                            v
                        }
                        _ => {
                            return Err(StateError::invalid(format!(
                                "Invalid filter: no value after the operator on [{word}]."
                            )));
                        }
                    };
                    Ok(Filter::Compare {
                        path: field_path(&word),
                        op,
                        value,
                    })
                } else {
                    Ok(Filter::Bare(word))
                }
            }
            Some(Token::Quoted(value)) => {
                self.pos += 1;
                Ok(Filter::Bare(value))
            }
            _ => Err(StateError::invalid(
                "Invalid filter: expected a field, a value or '('.",
            )),
        }
    }
}

/// Splits `labels.env` or `createTime` into snake_case segments; map keys keep their case.
fn field_path(word: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for segment in word.split('.') {
        let is_map_key = matches!(
            out.last().map(String::as_str),
            Some("labels" | "annotations" | "version_aliases" | "tags")
        );
        out.push(if is_map_key {
            segment.to_string()
        } else {
            snake_case(segment)
        });
    }
    out
}

/// `createTime` → `create_time`: filters name fields in either case.
pub(crate) fn snake_case(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() + 4);
    for c in segment.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Item {
        name: String,
        labels: BTreeMap<String, String>,
        created: String,
    }

    impl Filterable for Item {
        fn values(&self, path: &[&str]) -> Vec<String> {
            match path {
                ["name"] => vec![self.name.clone()],
                ["labels"] => self.labels.keys().cloned().collect(),
                ["labels", key] => self.labels.get(*key).cloned().into_iter().collect(),
                ["create_time"] => vec![self.created.clone()],
                _ => vec![],
            }
        }
    }

    fn item(name: &str, env: Option<&str>, created: &str) -> Item {
        Item {
            name: format!("projects/1/secrets/{name}"),
            labels: env
                .map(|e| BTreeMap::from([("env".to_string(), e.to_string())]))
                .unwrap_or_default(),
            created: created.into(),
        }
    }

    fn check(filter: &str, item: &Item) -> bool {
        Filter::parse(filter).expect("parses").matches(item)
    }

    #[test]
    fn the_operators_secret_manager_documents() {
        let a = item("db-password", Some("prod"), "2024-05-01T00:00:00Z");
        assert!(check("name:db-", &a));
        assert!(check("name:DB-", &a));
        assert!(!check("name:api", &a));
        assert!(check("labels.env=prod", &a));
        assert!(!check("labels.env=dev", &a));
        assert!(check("labels.env:*", &a));
        assert!(check("labels:env", &a));
        assert!(check("create_time>2024-01-01T00:00:00Z", &a));
        assert!(check("createTime<2025-01-01T00:00:00Z", &a));
        assert!(check("name:db AND labels.env=prod", &a));
        assert!(check("name:db labels.env=prod", &a));
        assert!(check("name:nope OR labels.env=prod", &a));
        assert!(check("NOT name:nope", &a));
        assert!(check("-name:nope", &a));
        assert!(check("(name:nope OR name:db) AND -labels.env=dev", &a));
        assert!(check("password", &a));
        assert!(check("labels.env=\"prod\"", &a));
        assert!(!check("labels.other:*", &a));
    }

    #[test]
    fn malformed_filters_are_invalid_argument() {
        for bad in ["name:", "(name:x", "name:x)", "labels.env!x", "\"open"] {
            assert!(
                matches!(Filter::parse(bad), Err(StateError::InvalidArgument(_))),
                "{bad} should be refused"
            );
        }
    }
}
