//! A YAML document as a tree whose every node knows its line, so that Compose errors and warnings
//! can name the line they are about. Anchors, aliases and `<<` merge keys are resolved here.

use std::collections::HashMap;

use yaml_rust2::Event;
use yaml_rust2::parser::{MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One YAML node and the line (1-based) it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub value: Value,
}

/// What a node holds. Scalars stay text: Compose reads them as the field expects.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing at all.
    Null,
    Scalar(String),
    Seq(Vec<Node>),
    /// Keys in file order, each with the line it is on.
    Map(Vec<(Key, Node)>),
}

/// A mapping key.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub line: usize,
}

/// A document that is not YAML, at a line.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Parses the first document of `text`; an empty text is a null node.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        line: e.marker().line(),
        message: e.info().to_string(),
    })?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    Ok(builder.root.unwrap_or(Node {
        line: 1,
        value: Value::Null,
    }))
}

enum Frame {
    Seq {
        line: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        line: usize,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    error: Option<SyntaxError>,
}

impl Builder {
    fn fail(&mut self, line: usize, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                line,
                message: message.into(),
            });
        }
    }

    fn push(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }

    fn close_map(&mut self, line: usize, entries: Vec<(Node, Node)>) -> Node {
        let mut own: Vec<(Key, Node)> = Vec::new();
        let mut merged: Vec<(Key, Node)> = Vec::new();
        for (key, value) in entries {
            let name = match key.value {
                Value::Scalar(name) => name,
                Value::Null => String::new(),
                _ => {
                    self.fail(key.line, "mapping keys must be plain text");
                    continue;
                }
            };
            if name == "<<" {
                let sources = match value.value {
                    Value::Seq(items) => items,
                    _ => vec![value],
                };
                for source in sources {
                    match source.value {
                        Value::Map(pairs) => merged.extend(pairs),
                        _ => self.fail(source.line, "a `<<` merge needs a mapping"),
                    }
                }
                continue;
            }
            if own.iter().any(|(k, _)| k.name == name) {
                self.fail(key.line, format!("mapping key \"{name}\" is duplicated"));
                continue;
            }
            own.push((
                Key {
                    name,
                    line: key.line,
                },
                value,
            ));
        }
        for (key, value) in merged {
            if !own.iter().any(|(k, _)| k.name == key.name) {
                own.push((key, value));
            }
        }
        Node {
            line,
            value: Value::Map(own),
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let value = if style == TScalarStyle::Plain
                    && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL")
                {
                    Value::Null
                } else {
                    Value::Scalar(text)
                };
                self.push(Node { line, value }, anchor);
            }
            Event::Alias(anchor) => match self.anchors.get(&anchor).cloned() {
                Some(node) => self.push(node, 0),
                None => self.fail(line, "alias to an unknown anchor"),
            },
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                line,
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                line,
                anchor,
                entries: Vec::new(),
                key: None,
            }),
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    line,
                    anchor,
                    items,
                }) = self.stack.pop()
                {
                    self.push(
                        Node {
                            line,
                            value: Value::Seq(items),
                        },
                        anchor,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    line,
                    anchor,
                    entries,
                    ..
                }) = self.stack.pop()
                {
                    let node = self.close_map(line, entries);
                    self.push(node, anchor);
                }
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

impl Node {
    /// The entries of a mapping node, or `None` for anything else.
    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The text of a scalar node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(text) => Some(text),
            _ => None,
        }
    }

    /// Looks a key up in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// What kind of node this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing",
            Value::Scalar(_) => "a single value",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_lines() {
        let doc = parse("services:\n  web:\n    image: nginx\n    ports:\n      - \"80:80\"\n")
            .expect("yaml");
        let web = doc.get("services").and_then(|s| s.get("web")).expect("web");
        assert_eq!(web.get("image").map(|n| n.line), Some(3));
        assert_eq!(web.get("ports").map(|n| n.line), Some(5));
        let (key, _) = &doc.as_map().expect("map")[0];
        assert_eq!(key.line, 1);
    }

    #[test]
    fn anchors_and_merge_keys_resolve() {
        let doc = parse(
            "x-common: &common\n  restart: always\n  image: base\nservices:\n  a:\n    <<: *common\n    image: own\n",
        )
        .expect("yaml");
        let a = doc.get("services").and_then(|s| s.get("a")).expect("a");
        assert_eq!(a.get("image").and_then(Node::as_str), Some("own"));
        assert_eq!(a.get("restart").and_then(Node::as_str), Some("always"));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let error =
            parse("services:\n  web:\n    image: [nginx\n    ports: 80\n").expect_err("must fail");
        assert!(error.line >= 3, "{error:?}");
        let error = parse("a: 1\na: 2\n").expect_err("must fail");
        assert_eq!(error.line, 2);
        assert!(error.message.contains("duplicated"), "{error:?}");
    }

    #[test]
    fn plain_null_is_null_but_quoted_is_text() {
        let doc = parse("a:\nb: ''\nc: ~\n").expect("yaml");
        assert_eq!(doc.get("a").map(|n| &n.value), Some(&Value::Null));
        assert_eq!(doc.get("b").and_then(Node::as_str), Some(""));
        assert_eq!(doc.get("c").map(|n| &n.value), Some(&Value::Null));
    }
}
