//! Rendering straight into YAML line tokens: the common Stage templates skip printing
//! YAML text and reading it back.
//!
//! A template's literal text is tokenized once, when it is parsed ([`Text`]): the
//! complete lines of each text node, its last, unfinished line as a whole line, and that
//! line as a prefix a value may end (`  lastTransitionTime: ` before
//! `{{ $now | Quote }}`). A rendering records what it would print ([`Event`]s: text nodes
//! and values), and [`tokens`] turns the record into the tokens [`yaml::build`] reads.
//! A line that is a prefix and one value becomes the prefix's tokens and the value
//! itself: a quoted value is the string `Quote` would have printed and YAML read back
//! (never quoted and unquoted), a printed value that is a one-line plain scalar is
//! resolved as one. Any other line is printed as text and tokenized.
//!
//! # Invariant
//!
//! The tokens are those the text path ([`yaml::Lines`]) would read from the printed
//! output. Where that cannot be known line by line (a `|` block scalar that a value or a
//! later node could continue, a value whose text is not a one-line scalar after a
//! prefix, a text node whose lines cannot be tokenized alone), [`tokens`] gives up and the
//! caller prints the same record ([`print`]) and reads the text, so the two paths never
//! differ: `render_value_should_match_the_text_path` checks it on every catalog template.

use std::{borrow::Cow, sync::LazyLock};

use serde_json::Value;

use super::{
    ast::Node,
    format::{print_action, sorted_entries},
    kwok::{quoted_content, write_quote, write_yaml_indented},
    parser::Tree,
    value::{Val, View},
    yaml::{Fast, Kind, Leaf, Lines, Tok, Unsupported, inline, is_document_marker, tokenize_line},
};

/// A literal text node, tokenized when the template is parsed.
#[derive(Debug, Clone)]
pub struct Text {
    /// The text.
    pub raw: Box<str>,
    /// Its tokens; `None` when its lines cannot be read apart from the rest.
    plan: Option<Plan>,
}

#[derive(Debug, Clone)]
struct Plan {
    /// `raw[..head]` ends the line that was open before this node.
    head: usize,
    /// Whether `raw` holds a newline (else `head` is all of it, and so is the tail).
    newline: bool,
    /// The complete lines between the first and the last newline.
    lines: Vec<Tok<'static>>,
    /// `raw[tail..]` opens the line after the last newline.
    tail: usize,
    /// The tail's tokens if the line ends right after it.
    tail_line: Option<Vec<Tok<'static>>>,
    /// The tail as the start of a line that a value ends.
    prefix: Option<Prefix>,
}

/// Indentation, dashes and a key that a scalar ends (`  - type: `).
#[derive(Debug, Clone)]
struct Prefix {
    toks: Vec<Tok<'static>>,
    /// The column the value starts at.
    col: usize,
    /// The column of the dash or key that owns it.
    parent: usize,
}

impl Text {
    /// Tokenizes `raw`.
    pub fn new(raw: String) -> Self {
        let plan = Plan::of(&raw);
        Self {
            raw: raw.into(),
            plan,
        }
    }

    fn plan(&self) -> Fast<&Plan> {
        self.plan.as_ref().ok_or(Unsupported)
    }

    fn tail(&self) -> &str {
        self.plan.as_ref().map_or("", |p| &self.raw[p.tail..])
    }
}

impl Plan {
    fn of(raw: &str) -> Option<Self> {
        let (head, newline, lines, tail) = match (raw.find('\n'), raw.rfind('\n')) {
            (Some(first), Some(last)) => (first, true, owned_tokens(&raw[first + 1..=last]).ok()?, last + 1),
            _ => (raw.len(), false, Vec::new(), 0),
        };
        let rest = &raw[tail..];
        Some(Self {
            head,
            newline,
            lines,
            tail,
            tail_line: owned_tokens(rest).ok(),
            prefix: prefix(rest),
        })
    }
}

/// The tokens of the complete lines in `text`, owning their keys and scalars.
fn owned_tokens(text: &str) -> Fast<Vec<Tok<'static>>> {
    let mut toks = Vec::new();
    Lines::piece(text).tokens(&mut toks)?;
    Ok(toks.into_iter().map(Tok::into_owned).collect())
}

/// `text` as the start of a line that a value ends: blank, or dashes and a key followed
/// by a space (`key:` alone would join a value into one plain scalar, `key:v`).
fn prefix(text: &str) -> Option<Prefix> {
    let indent = text.bytes().take_while(|&b| b == b' ').count();
    let rest = text[indent..].trim_end_matches(' ');
    if rest.is_empty() {
        return Some(Prefix {
            toks: Vec::new(),
            col: text.len(),
            parent: text.len(),
        });
    }
    let marker = indent == 0 && is_document_marker(rest);
    if rest.len() == text.len() - indent || rest.contains(['#', '\t']) || marker {
        return None;
    }
    let mut toks = Vec::new();
    tokenize_line(indent, rest, None, &mut toks).ok()?;
    let last = toks.last()?;
    if matches!(last.kind, Kind::Scalar(_)) {
        return None;
    }
    Some(Prefix {
        parent: last.col,
        toks: toks.into_iter().map(Tok::into_owned).collect(),
        col: text.len(),
    })
}

/// What a rendering printed, in order.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A literal text node.
    Text(&'a Text),
    /// A value an action printed: quoted by `Quote`, or as Go's `{{ . }}` prints it.
    Value(Val<'a>, Quoted),
    /// What an action ending in `YAML v levels` printed.
    Yaml(Val<'a>, usize),
}

/// Whether `Quote` printed a value.
pub type Quoted = bool;

/// Prints a value as an action does.
pub fn print_value(v: &Val<'_>, quoted: Quoted, out: &mut String) {
    if quoted {
        write_quote(v, out);
    } else {
        print_action(v, out);
    }
}

/// The output of a recorded rendering as text.
pub fn print(events: &[Event<'_>]) -> String {
    let mut out = String::with_capacity(1024);
    for event in events {
        match event {
            Event::Text(t) => out.push_str(&t.raw),
            Event::Value(v, quoted) => print_value(v, *quoted, &mut out),
            Event::Yaml(v, levels) => write_yaml_indented(v.view(), *levels, &mut out),
        }
    }
    out
}

/// Whether every text node of `tree` is tokenized.
pub fn planned(tree: &Tree) -> bool {
    fn nodes(list: &[Node]) -> bool {
        list.iter().all(|node| match node {
            Node::Text(t) => t.plan.is_some(),
            Node::Cond(c) => c.arms.iter().all(|(_, body)| nodes(body)) && nodes(&c.otherwise),
            Node::Range(r) => nodes(&r.body) && nodes(&r.otherwise),
            Node::Action(_) | Node::Template { .. } | Node::Break | Node::Continue => true,
        })
    }
    nodes(&tree.main.nodes) && tree.defs.iter().flatten().all(|body| nodes(&body.nodes))
}

/// The line tokens of a recorded rendering; [`Unsupported`] where only the printed text
/// can tell (see the module's invariant).
pub fn tokens<'e>(events: &'e [Event<'_>]) -> Fast<Vec<Tok<'e>>> {
    static START: LazyLock<Text> = LazyLock::new(|| Text::new(String::new()));
    let mut lines = LineMaker {
        // The catalog's templates make fewer than two tokens an event (84–118 tokens
        // from 45–109 events), so a rendering never grows it.
        toks: Vec::with_capacity(2 * events.len() + 16),
        open: Open::Tail(&START),
        raw: String::new(),
    };
    for event in events {
        match event {
            Event::Text(t) => lines.text(t)?,
            Event::Value(v, quoted) => lines.value(v, *quoted),
            Event::Yaml(v, levels) => lines.yaml(v, *levels)?,
        }
    }
    lines.end_line("")?;
    Ok(lines.toks)
}

/// The line being made.
enum Open<'e, 'a> {
    /// The tail of this text node, and nothing after it.
    Tail(&'e Text),
    /// The tail of this text node, which is a [`Prefix`], and one value.
    Value(&'e Text, &'e Val<'a>, Quoted),
    /// Anything else, printed in `LineMaker::raw`.
    Raw,
}

struct LineMaker<'e, 'a> {
    toks: Vec<Tok<'e>>,
    open: Open<'e, 'a>,
    raw: String,
}

impl<'e, 'a> LineMaker<'e, 'a> {
    fn text(&mut self, t: &'e Text) -> Fast<()> {
        let plan = t.plan()?;
        if !plan.newline {
            match self.open {
                _ if t.raw.is_empty() => {}
                Open::Tail(open) if open.tail().is_empty() => self.open = Open::Tail(t),
                _ => {
                    self.print_open();
                    self.raw.push_str(&t.raw);
                }
            }
            return Ok(());
        }
        self.end_line(&t.raw[..plan.head])?;
        self.toks.extend(plan.lines.iter().map(Tok::borrowed));
        self.open = Open::Tail(t);
        Ok(())
    }

    fn value(&mut self, v: &'e Val<'a>, quoted: Quoted) {
        match self.open {
            Open::Tail(t) if t.plan.as_ref().is_some_and(|p| p.prefix.is_some()) => {
                self.open = Open::Value(t, v, quoted);
            }
            _ => {
                self.print_open();
                print_value(v, quoted, &mut self.raw);
            }
        }
    }

    /// `YAML v levels` with `levels` > 0 prints a newline, its lines indented by
    /// `2 × levels`, and that indentation again. After a line the tokens can end, a
    /// non-empty map of one-line strings is its sorted keys and strings as the text path
    /// reads them ([`yaml_entries`]); anything else is printed.
    fn yaml(&mut self, v: &'e Val<'a>, levels: usize) -> Fast<()> {
        let ends_line =
            matches!(self.open, Open::Tail(t) if t.plan.as_ref().is_some_and(|p| p.tail_line.is_some()));
        match yaml_entries(v) {
            Some(entries) if levels > 0 && ends_line => {
                self.end_line("")?;
                let col = 2 * levels;
                for (key, s) in entries {
                    self.toks.push(Tok {
                        col,
                        first: true,
                        kind: Kind::Key(Cow::Borrowed(key)),
                    });
                    self.toks.push(Tok {
                        col: col + key.len() + 2,
                        first: false,
                        kind: Kind::Scalar(Leaf::Str(Cow::Borrowed(s))),
                    });
                }
                self.open = Open::Raw;
                self.raw.extend(std::iter::repeat_n(' ', col));
            }
            _ => {
                self.print_open();
                write_yaml_indented(v.view(), levels, &mut self.raw);
            }
        }
        Ok(())
    }

    /// Turns the open line into text in `raw`.
    fn print_open(&mut self) {
        match std::mem::replace(&mut self.open, Open::Raw) {
            Open::Tail(t) => self.raw.push_str(t.tail()),
            Open::Value(t, v, quoted) => {
                self.raw.push_str(t.tail());
                print_value(v, quoted, &mut self.raw);
            }
            Open::Raw => {}
        }
    }

    /// Ends the open line with `head`, the text before a newline.
    fn end_line(&mut self, head: &str) -> Fast<()> {
        if head.bytes().all(|b| b.is_ascii_whitespace()) {
            match self.open {
                Open::Tail(t) => {
                    let toks = t.plan()?.tail_line.as_ref().ok_or(Unsupported)?;
                    self.toks.extend(toks.iter().map(Tok::borrowed));
                    return Ok(());
                }
                Open::Value(t, v, quoted) => {
                    let prefix = t.plan()?.prefix.as_ref().ok_or(Unsupported)?;
                    if let Some(value) = scalar(v, quoted, prefix.parent) {
                        self.toks.extend(prefix.toks.iter().map(Tok::borrowed));
                        self.toks.push(Tok {
                            col: prefix.col,
                            first: prefix.toks.is_empty(),
                            kind: Kind::Scalar(value),
                        });
                        return Ok(());
                    }
                }
                Open::Raw => {}
            }
        }
        self.print_open();
        self.raw.push_str(head);
        let toks = owned_tokens(&self.raw)?;
        self.toks.extend(toks);
        self.raw.clear();
        Ok(())
    }
}

/// The entries of a `YAML` value that tokens can give without marshalling: a non-empty
/// map whose keys and values are non-empty strings without control characters (so each
/// entry is one `key: value` line, quoted by the marshaller where plain would read
/// otherwise), in the marshaller's key order. `None` for anything else.
fn yaml_entries<'v>(v: &'v Val<'_>) -> Option<Vec<(&'v str, &'v str)>> {
    let View::Map(m) = v.view() else { return None };
    let one_line = |s: &str| !s.is_empty() && !s.chars().any(char::is_control);
    if m.is_empty() {
        return None;
    }
    sorted_entries(m)
        .map(|(k, v)| match v {
            Value::String(s) if one_line(k) && one_line(s) => Some((k.as_str(), s.as_str())),
            _ => None,
        })
        .collect()
}

/// The scalar a value printed after a prefix reads as; `None` when its text is not one
/// plain scalar on its own (the line is then printed and read as text).
/// A string borrows from the value: most values a line ends with are quoted strings.
fn scalar<'e>(v: &'e Val<'_>, quoted: Quoted, parent: usize) -> Option<Leaf<'e>> {
    let plain = |text: &str| {
        // A line starting with a document marker is the full parser's, even after a prefix.
        let marker = is_document_marker(text);
        !text.is_empty() && !text.starts_with('#') && !marker && !text.contains('\n') && text.trim() == text
    };
    match (quoted, v.view()) {
        (true, View::Str(s)) => Some(Leaf::Str(Cow::Borrowed(s))),
        (true, _) => Some(Leaf::Str(Cow::Owned(quoted_content(v)))),
        (false, View::Str(s)) => plain(s).then(|| inline(s, parent, None).ok()).flatten(),
        (false, _) => {
            let mut text = String::new();
            print_action(v, &mut text);
            plain(&text)
                .then(|| inline(&text, parent, None).ok().map(Leaf::into_owned))
                .flatten()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix_of(text: &str) -> Option<(usize, usize, usize)> {
        prefix(text).map(|p| (p.toks.len(), p.col, p.parent))
    }

    #[test]
    fn a_prefix_should_be_blank_or_end_in_a_dash_or_key_and_a_space() {
        assert_eq!(prefix_of("    "), Some((0, 4, 4)));
        assert_eq!(prefix_of("  - type: "), Some((2, 10, 4)));
        assert_eq!(prefix_of("- - "), Some((2, 4, 2)));
        assert_eq!(prefix_of("key:"), None, "key:v is one scalar");
        assert_eq!(prefix_of("key: v "), None, "a value is there already");
        assert_eq!(prefix_of("key: # c "), None, "a value would be in the comment");
        assert_eq!(prefix_of("--- "), None);
    }

    #[test]
    fn a_flat_yaml_map_after_a_line_should_become_tokens_without_printing() {
        let tree = crate::template::parser::parse("a:\n{{ YAML . 1 }}\nb: 1\n", false).unwrap();
        let data = serde_json::json!({"y": "2", "x": "1"});
        let mut host = crate::host::FixedHost::new(jiff::Timestamp::UNIX_EPOCH);
        let mut events = Vec::new();
        crate::template::eval::execute(&tree, &data, &mut host, &mut events).unwrap();
        assert!(matches!(events[1], Event::Yaml(_, 1)), "{events:?}");
        let toks = tokens(&events).unwrap();
        // Borrowed keys: read from the value, not from printed text.
        let keys: Vec<_> = toks
            .iter()
            .filter_map(|t| match &t.kind {
                Kind::Key(k) => Some((t.col, k.as_ref(), matches!(k, Cow::Borrowed(_)))),
                _ => None,
            })
            .collect();
        // (`a:` ends the line open before the template, so it is printed and read.)
        assert_eq!(
            keys,
            [(0, "a", false), (2, "x", true), (2, "y", true), (0, "b", true)]
        );
    }

    #[test]
    fn a_block_scalar_that_a_later_node_could_continue_should_not_be_planned() {
        assert!(Text::new("\na: |\n  x\nb: 1\n".into()).plan.is_some());
        assert!(Text::new("\na: |\n  x\n".into()).plan.is_none());
        assert!(Text::new("a: |".into()).plan.unwrap().tail_line.is_none());
    }
}
