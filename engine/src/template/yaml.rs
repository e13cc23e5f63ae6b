//! YAML → JSON for rendered templates: a fast reader for the block YAML templates emit,
//! falling back to `serde-saphyr` for everything else.
//!
//! # Implementation
//!
//! The fast reader splits each line into [`Tok`]s (dashes, keys and resolved scalars,
//! with their columns; [`Lines`]) and builds the value from them by column ([`build`]);
//! [`super::tokens`] feeds the same builder without printing text. It handles block
//! mappings and sequences (also `key:\n- item` at the key's indentation), plain and quoted
//! one-line scalars, empty flow collections `{}`/`[]`, `|` block scalars and comments. Anything else (anchors, tags, flow content, multi-line plain
//! or quoted scalars, documents markers, tabs in indentation) makes it give up with
//! [`Unsupported`], and the whole text goes to `serde-saphyr` instead, which is about 50×
//! slower but complete. Both follow the YAML 1.2 core schema: only `true`/`false` in their
//! three spellings are booleans, so `yes`, `on` and quoted `"True"` stay strings.

use std::{borrow::Cow, fmt::Write as _, marker::PhantomData};

use serde_json::{Map, Number, Value};

use super::Error;

/// The fast reader met something it leaves to the full parser.
#[derive(Debug)]
pub struct Unsupported;

/// The fast reader's result.
pub type Fast<T> = Result<T, Unsupported>;

/// Converts rendered YAML to JSON; empty or whitespace-only text is `null`.
pub fn to_json(text: &str) -> Result<Value, Error> {
    match fast(text) {
        Ok(v) => Ok(v),
        Err(Unsupported) => full_parse(text),
    }
}

/// The fast reader: the text's line tokens, built into a value.
fn fast(text: &str) -> Fast<Value> {
    let mut toks = Vec::new();
    Lines::new(text).tokens(&mut toks)?;
    build(toks)
}

fn full_parse(text: &str) -> Result<Value, Error> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        underscored_numbers_as_strings: true,
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::LastWins,
    };
    serde_saphyr::from_str_with_options::<Option<Value>>(text, options)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            // The parser adds a source excerpt on further lines; render errors are one line.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            Error::Render(format!("failed to parse rendered YAML: {first}"))
        })
}

/// The type a plain scalar resolves to under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    /// `null`, `~` or empty.
    Null,
    /// `true`/`false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// An integer above `i64::MAX`.
    Uint(u64),
    /// A float.
    Float(f64),
    /// `.inf`/`.nan`: no JSON form.
    NonFinite,
    /// A string.
    Str,
}

/// Resolves a plain scalar.
pub fn plain_scalar(s: &str) -> Scalar {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        _ => {}
    }
    let b = s.as_bytes();
    if !(b[0].is_ascii_digit() || matches!(b[0], b'-' | b'+' | b'.')) {
        return Scalar::Str;
    }
    number(s)
}

fn number(s: &str) -> Scalar {
    let (neg, digits) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if !neg && s.as_bytes()[0] != b'+' {
        let radix = [("0x", 16), ("0o", 8)]
            .into_iter()
            .find(|(p, _)| s.starts_with(p));
        if let Some((p, r)) = radix {
            return i64::from_str_radix(&s[p.len()..], r).map_or(Scalar::Str, Scalar::Int);
        }
    }
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return integer(s);
    }
    if matches!(digits, ".inf" | ".Inf" | ".INF") || matches!(s, ".nan" | ".NaN" | ".NAN") {
        return Scalar::NonFinite;
    }
    if is_float(digits) {
        return s.parse().map_or(Scalar::Str, Scalar::Float);
    }
    Scalar::Str
}

fn integer(s: &str) -> Scalar {
    if let Ok(i) = s.parse::<i64>() {
        Scalar::Int(i)
    } else if let Ok(u) = s.trim_start_matches('+').parse::<u64>() {
        Scalar::Uint(u)
    } else {
        s.parse().map_or(Scalar::Str, Scalar::Float)
    }
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(s: &str) -> bool {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && (!int.is_empty() || !frac.is_empty());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exp_ok
}

fn scalar_value(s: &str) -> Fast<Leaf<'_>> {
    Ok(match plain_scalar(s) {
        Scalar::Null => Leaf::Null,
        Scalar::Bool(b) => Leaf::Bool(b),
        Scalar::Int(i) => Leaf::Number(i.into()),
        Scalar::Uint(u) => Leaf::Number(u.into()),
        Scalar::Float(f) => Leaf::Number(Number::from_f64(f).ok_or(Unsupported)?),
        Scalar::NonFinite => return Err(Unsupported),
        Scalar::Str => Leaf::Str(Cow::Borrowed(s)),
    })
}

/// One element of a block YAML line, as the [`Builder`] reads them: a line such as
/// `- name: x` is a dash, a key and a scalar.
#[derive(Debug, Clone, PartialEq)]
pub struct Tok<'s> {
    /// The column it starts at.
    pub col: usize,
    /// Whether it starts its line (else it follows a dash or key on the same line).
    pub first: bool,
    /// What it is.
    pub kind: Kind<'s>,
}

/// What a [`Tok`] is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind<'s> {
    /// `-`: a sequence item.
    Dash,
    /// `key:`: a mapping entry.
    Key(Cow<'s, str>),
    /// A scalar or empty flow collection, already resolved.
    Scalar(Leaf<'s>),
}

/// What the fast reader reads on one line: a scalar or an empty flow collection (kept
/// small: tokens are moved around a lot, and a `Value` is ten words).
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf<'s> {
    /// A string.
    Str(Cow<'s, str>),
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(Number),
    /// `{}`.
    EmptyMap,
    /// `[]`.
    EmptySeq,
}

impl Leaf<'_> {
    /// The same leaf owning its string.
    pub fn into_owned(self) -> Leaf<'static> {
        match self {
            Leaf::Str(s) => Leaf::Str(Cow::Owned(s.into_owned())),
            Leaf::Null => Leaf::Null,
            Leaf::Bool(b) => Leaf::Bool(b),
            Leaf::Number(n) => Leaf::Number(n),
            Leaf::EmptyMap => Leaf::EmptyMap,
            Leaf::EmptySeq => Leaf::EmptySeq,
        }
    }

    /// The same leaf borrowing its string from `self`.
    pub fn borrowed(&self) -> Leaf<'_> {
        match self {
            Leaf::Str(s) => Leaf::Str(Cow::Borrowed(s)),
            other => other.clone(),
        }
    }

    /// As JSON.
    pub fn into_value(self) -> Value {
        match self {
            Leaf::Str(s) => Value::String(s.into_owned()),
            Leaf::Null => Value::Null,
            Leaf::Bool(b) => Value::Bool(b),
            Leaf::Number(n) => Value::Number(n),
            Leaf::EmptyMap => Value::Object(Map::new()),
            Leaf::EmptySeq => Value::Array(Vec::new()),
        }
    }
}

impl Tok<'_> {
    /// The same token owning its key or scalar.
    pub fn into_owned(self) -> Tok<'static> {
        let kind = match self.kind {
            Kind::Dash => Kind::Dash,
            Kind::Key(k) => Kind::Key(Cow::Owned(k.into_owned())),
            Kind::Scalar(v) => Kind::Scalar(v.into_owned()),
        };
        Tok { kind, ..self }
    }

    /// The same token borrowing its key or scalar from `self`.
    pub fn borrowed(&self) -> Tok<'_> {
        let kind = match &self.kind {
            Kind::Dash => Kind::Dash,
            Kind::Key(k) => Kind::Key(Cow::Borrowed(k)),
            Kind::Scalar(v) => Kind::Scalar(v.borrowed()),
        };
        Tok { kind, ..*self }
    }

    fn is_dash(&self) -> bool {
        matches!(self.kind, Kind::Dash)
    }
}

/// One significant line: indentation and content without the trailing whitespace.
#[derive(Debug, Clone, Copy)]
struct Line<'s> {
    indent: usize,
    text: &'s str,
}

/// Splits text into the [`Tok`]s of its lines; `|` block scalars read their lines here.
pub struct Lines<'s> {
    src: &'s str,
    pos: usize,
    /// The text may go on after `src` (a piece of a template's output), so a block scalar
    /// that runs to its end cannot be read.
    open_ended: bool,
}

impl<'s> Lines<'s> {
    /// The lines of a whole document.
    pub fn new(src: &'s str) -> Self {
        Self {
            src,
            pos: 0,
            open_ended: false,
        }
    }

    /// The lines of a piece of a document: complete lines, but more may follow.
    pub fn piece(src: &'s str) -> Self {
        Self {
            open_ended: true,
            ..Self::new(src)
        }
    }

    /// Appends the tokens of every line.
    pub fn tokens(mut self, toks: &mut Vec<Tok<'s>>) -> Fast<()> {
        while let Some(line) = self.next_line()? {
            tokenize_line(line.indent, line.text, Some(&mut self), toks)?;
        }
        Ok(())
    }

    /// Finds the next line that is not blank or a comment.
    fn next_line(&mut self) -> Fast<Option<Line<'s>>> {
        while self.pos < self.src.len() {
            let rest = &self.src[self.pos..];
            let len = memchr_newline(rest);
            self.pos += (len + 1).min(rest.len());
            let raw = &rest[..len];
            let indent = raw.bytes().take_while(|&b| b == b' ').count();
            let text = raw[indent..].trim_ascii_end();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            if text.starts_with('\t') || (indent == 0 && is_document_marker(text)) {
                return Err(Unsupported);
            }
            return Ok(Some(Line { indent, text }));
        }
        Ok(None)
    }

    /// A `|` block scalar whose parent sits at column `n`; reads the raw lines after it.
    fn literal(&mut self, header: &str, n: usize) -> Fast<String> {
        let chomp = match strip_comment(header) {
            "|" => Chomp::Clip,
            "|-" => Chomp::Strip,
            "|+" => Chomp::Keep,
            _ => return Err(Unsupported),
        };
        let mut lines: Vec<&str> = Vec::new();
        let mut content_indent: Option<usize> = None;
        let mut ended = false;
        while self.pos < self.src.len() {
            let rest = &self.src[self.pos..];
            let len = memchr_newline(rest);
            let raw = &rest[..len];
            let indent = raw.bytes().take_while(|&b| b == b' ').count();
            if !raw.trim().is_empty() {
                let ci = *content_indent.get_or_insert(indent);
                if indent <= n || indent < ci {
                    ended = true;
                    break;
                }
            }
            let ci = content_indent.unwrap_or(len).min(len);
            lines.push(&raw[ci..]);
            self.pos += (len + 1).min(rest.len());
        }
        if self.open_ended && !ended {
            return Err(Unsupported);
        }
        Ok(chomp.apply(&lines))
    }
}

/// Appends the tokens of one line (`indent` spaces, then `text`). A `|` block scalar
/// reads its lines from `block`, and is unsupported without it.
pub fn tokenize_line<'s>(
    indent: usize,
    text: &'s str,
    block: Option<&mut Lines<'s>>,
    toks: &mut Vec<Tok<'s>>,
) -> Fast<()> {
    // `n`: the column of the dash or key that owns what follows (a block scalar's parent).
    let (mut col, mut rest, mut n, mut first) = (indent, text, indent, true);
    while is_seq_item(rest) {
        toks.push(Tok {
            col,
            first,
            kind: Kind::Dash,
        });
        let after = rest[1..].trim_start();
        n = col;
        col += rest.len() - after.len();
        first = false;
        rest = after;
        if rest.is_empty() || rest.starts_with('#') {
            return Ok(());
        }
    }
    if let Some((key, after)) = split_key(rest)? {
        toks.push(Tok {
            col,
            first,
            kind: Kind::Key(key),
        });
        if after.is_empty() || after.starts_with('#') {
            return Ok(());
        }
        n = col;
        col += rest.len() - after.len();
        first = false;
        rest = after;
    }
    let v = inline(rest, n, block)?;
    toks.push(Tok {
        col,
        first,
        kind: Kind::Scalar(v),
    });
    Ok(())
}

/// A scalar or empty flow collection written on the current line; `n` is the parent column.
pub fn inline<'s>(text: &'s str, n: usize, block: Option<&mut Lines<'s>>) -> Fast<Leaf<'s>> {
    let owned = |s: String| Leaf::Str(Cow::Owned(s));
    match text.as_bytes()[0] {
        b'"' => end_of_scalar(double_quoted(text)?, text).map(owned),
        b'\'' => end_of_scalar(single_quoted(text)?, text).map(owned),
        b'{' | b'[' => empty_flow(text),
        b'|' => block.ok_or(Unsupported)?.literal(text, n).map(owned),
        b'>' | b'&' | b'*' | b'!' | b'%' | b'@' | b'`' | b'?' => Err(Unsupported),
        b'-' if is_seq_item(text) => Err(Unsupported),
        _ => {
            let plain = strip_comment(text);
            if plain_colon(plain).is_some() {
                return Err(Unsupported);
            }
            scalar_value(plain)
        }
    }
}

/// Builds the value of a whole document from the tokens of its lines (`null` for none).
pub fn build<'s, T: Tree<'s>>(toks: Vec<Tok<'s>>) -> Fast<T> {
    let mut builder = Builder {
        toks: toks.into_iter(),
        tree: PhantomData,
    };
    let mut v = T::leaf(Leaf::Null);
    if builder.peek().is_none() {
        return Ok(v);
    }
    builder.node(&mut v)?;
    match builder.peek() {
        None => Ok(v),
        Some(_) => Err(Unsupported),
    }
}

/// What [`build`] makes of the tokens: a [`Value`], or a [`Node`] that borrows its keys
/// and strings from them.
pub trait Tree<'s>: Sized {
    /// A mapping being read.
    type Map;
    /// An empty mapping.
    fn new_map() -> Self::Map;
    /// A scalar or empty collection.
    fn leaf(leaf: Leaf<'s>) -> Self;
    /// A sequence of its items.
    fn seq(items: Vec<Self>) -> Self;
    /// The place of `key`'s value in a mapping, to be built in: a new entry, or the
    /// earlier one of a repeated key (YAML's last-wins, as `serde-saphyr` is told to read
    /// it). Building in place, rather than moving the built value into the mapping,
    /// spares a copy that stalled the processor on every entry.
    fn slot<'m>(map: &'m mut Self::Map, key: Cow<'s, str>) -> &'m mut Self;
    /// The finished mapping.
    fn map(map: Self::Map) -> Self;
    /// A whole document the full parser read.
    fn from_value(v: Value) -> Self;
}

impl<'s> Tree<'s> for Value {
    type Map = Map<String, Value>;
    fn new_map() -> Self::Map {
        Map::new()
    }
    fn leaf(leaf: Leaf<'s>) -> Self {
        leaf.into_value()
    }
    fn seq(items: Vec<Self>) -> Self {
        Value::Array(items)
    }
    fn slot<'m>(map: &'m mut Self::Map, key: Cow<'s, str>) -> &'m mut Self {
        map.entry(key.into_owned()).or_insert(Value::Null)
    }
    fn map(map: Self::Map) -> Self {
        Value::Object(map)
    }
    fn from_value(v: Value) -> Self {
        v
    }
}

/// A rendered document that borrows its keys and strings from the template and the
/// rendering's record: what a patch is written from as JSON text without building a
/// [`Value`] key by key (each key and string of which is an allocation).
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'s> {
    /// A scalar or empty collection.
    Leaf(Leaf<'s>),
    /// A sequence.
    Seq(Vec<Node<'s>>),
    /// A mapping, in the order its keys were read, each key once.
    Map(Vec<(Cow<'s, str>, Node<'s>)>),
}

/// A mapping's entries as [`Node`] reads them.
type Entries<'s> = Vec<(Cow<'s, str>, Node<'s>)>;

impl<'s> Tree<'s> for Node<'s> {
    type Map = Entries<'s>;
    fn new_map() -> Entries<'s> {
        // Most of a status's mappings have under eight keys: one allocation, no growth.
        Vec::with_capacity(8)
    }
    fn leaf(leaf: Leaf<'s>) -> Self {
        Node::Leaf(leaf)
    }
    fn seq(items: Vec<Self>) -> Self {
        Node::Seq(items)
    }
    fn slot<'m>(map: &'m mut Entries<'s>, key: Cow<'s, str>) -> &'m mut Self {
        // Mappings are short; a scan beats hashing, and keeps the first key's place.
        let at = match map.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                map.push((key, Node::Leaf(Leaf::Null)));
                map.len() - 1
            }
        };
        &mut map[at].1
    }
    fn map(map: Entries<'s>) -> Self {
        Node::Map(map)
    }
    fn from_value(v: Value) -> Self {
        Node::owned(v)
    }
}

impl Node<'_> {
    /// The node of a value (what the full parser read), owning its text.
    pub fn owned(v: Value) -> Node<'static> {
        match v {
            Value::Null => Node::Leaf(Leaf::Null),
            Value::Bool(b) => Node::Leaf(Leaf::Bool(b)),
            Value::Number(n) => Node::Leaf(Leaf::Number(n)),
            Value::String(s) => Node::Leaf(Leaf::Str(Cow::Owned(s))),
            Value::Array(items) => Node::Seq(items.into_iter().map(Node::owned).collect()),
            Value::Object(map) => Node::Map(
                map.into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Node::owned(v)))
                    .collect(),
            ),
        }
    }

    /// `null` (also the empty document).
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Leaf(Leaf::Null))
    }

    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// As a [`Value`].
    pub fn into_value(self) -> Value {
        match self {
            Node::Leaf(leaf) => leaf.into_value(),
            Node::Seq(items) => Value::Array(items.into_iter().map(Node::into_value).collect()),
            Node::Map(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_value()))
                    .collect(),
            ),
        }
    }

    /// Appends the node as JSON text. Strings that need no escaping (the common case:
    /// names, times, addresses) are copied as they are; the rest go through `serde_json`.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Node::Leaf(Leaf::Str(v)) => write_json_string(v, out),
            Node::Leaf(Leaf::Null) => out.push_str("null"),
            Node::Leaf(Leaf::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
            Node::Leaf(Leaf::Number(n)) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => out.push_str(itoa::Buffer::new().format(u)),
                (_, Some(i)) => out.push_str(itoa::Buffer::new().format(i)),
                // `Number`'s `Display` is its JSON (finite by construction).
                _ => {
                    let _ = write!(out, "{n}");
                }
            },
            Node::Leaf(Leaf::EmptyMap) => out.push_str("{}"),
            Node::Leaf(Leaf::EmptySeq) => out.push_str("[]"),
            Node::Seq(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Node::Map(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

/// Appends `s` as a JSON string as `serde_json` writes it: copied as it is when no byte
/// needs an escape (the common case: names, keys, times, addresses), else through
/// `serde_json`. (Go's escaping, for templates' `toJson`, is `json::write_json_str`.)
pub fn write_json_string(s: &str, out: &mut String) {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&Value::from(s).to_string());
    }
}

/// Whether JSON must escape a byte of `s` (a control character, `"` or `\`).
///
/// Eight bytes at a time: most strings here are short keys and values, where a byte loop
/// (even a vectorised one, which leaves them to its scalar tail) costs a compare per byte.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // The high bit of a byte below `n` (n ≤ 0x80) survives: exact as a yes or no, since
    // a borrow only crosses into a byte above one that is flagged already.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let flagged = |x: u64| {
        below(x, 0x20) | below(x ^ (ONES * u64::from(b'"')), 1) | below(x ^ (ONES * u64::from(b'\\')), 1) != 0
    };
    let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().expect("eight bytes"));
    let half = |b: &[u8]| u64::from(u32::from_ne_bytes(b.try_into().expect("four bytes")));
    // Short strings are read in overlapping pieces that cover every byte (copying them
    // into a padded word stalls the load that follows the copy).
    let n = s.len();
    match n {
        0 => false,
        1..=3 => {
            let spaces = u64::from_ne_bytes([b' '; 8]) << 24;
            flagged(spaces | u64::from(s[0]) | u64::from(s[n / 2]) << 8 | u64::from(s[n - 1]) << 16)
        }
        4..=7 => flagged(half(&s[..4]) | half(&s[n - 4..]) << 32),
        // The last word overlaps the chunks when the length is not a multiple of eight.
        _ => s.chunks_exact(8).any(|c| flagged(word(c))) || flagged(word(&s[n - 8..])),
    }
}

/// Reads block mappings and sequences from tokens by their columns.
///
/// Each sequence is sized before it is read (see [`Builder::dashes`]), so its items go
/// straight into place.
struct Builder<'s, T> {
    toks: std::vec::IntoIter<Tok<'s>>,
    tree: PhantomData<T>,
}

impl<'s, T: Tree<'s>> Builder<'s, T> {
    fn peek(&self) -> Option<&Tok<'s>> {
        self.toks.as_slice().first()
    }

    /// How many items a sequence whose dashes sit at column `n`, starting at the next
    /// token, can have: its dashes before the first token left of `n` or a key at `n`.
    /// Never fewer than it reads, so it is a capacity that is not exceeded.
    fn dashes(&self, n: usize) -> usize {
        self.toks
            .as_slice()
            .iter()
            .take_while(|t| t.col > n || (t.col == n && t.is_dash()))
            .filter(|t| t.col == n)
            .count()
    }

    /// The node that starts with the next token (the first of its line), into `out`.
    fn node(&mut self, out: &mut T) -> Fast<()> {
        let col = self.peek().ok_or(Unsupported)?.col;
        self.node_under(col, out)
    }

    /// The node that starts with the next token, into `out`; a scalar there must not be
    /// followed by a line deeper than column `n` (a multi-line plain scalar, left to the
    /// full parser).
    fn node_under(&mut self, n: usize, out: &mut T) -> Fast<()> {
        let tok = self.peek().ok_or(Unsupported)?;
        let col = tok.col;
        match tok.kind {
            Kind::Dash => self.seq(col, out),
            Kind::Key(_) => self.map(col, out),
            Kind::Scalar(_) => {
                *out = self.scalar()?;
                self.no_continuation(n)
            }
        }
    }

    /// Takes the next token, which must be a scalar.
    fn scalar(&mut self) -> Fast<T> {
        match self.toks.next() {
            Some(Tok {
                kind: Kind::Scalar(v),
                ..
            }) => Ok(T::leaf(v)),
            _ => Err(Unsupported),
        }
    }

    /// A block sequence whose dashes sit at column `n`, into `out`.
    fn seq(&mut self, n: usize, out: &mut T) -> Fast<()> {
        let size = self.dashes(n);
        let mut items: Vec<T> = Vec::with_capacity(size);
        while let Some(tok) = self.peek() {
            if tok.col != n || !tok.is_dash() {
                if tok.col > n {
                    return Err(Unsupported);
                }
                break;
            }
            self.toks.next();
            items.push(T::leaf(Leaf::Null));
            let last = items.len() - 1;
            self.item(n, &mut items[last])?;
        }
        debug_assert!(items.len() <= size, "sized before reading");
        *out = T::seq(items);
        Ok(())
    }

    /// The value after a dash at column `n`, into `out`: on its line, or on the lines
    /// after it.
    fn item(&mut self, n: usize, out: &mut T) -> Fast<()> {
        match self.peek() {
            Some(tok) if !tok.first => self.node_under(n, out),
            _ => self.nested(n, false, out),
        }
    }

    /// The value on the lines after `key:` or `-` at column `n`, into `out` (left null
    /// when there is none).
    fn nested(&mut self, n: usize, seq_at_same_indent: bool, out: &mut T) -> Fast<()> {
        match self.peek() {
            Some(next) if next.col > n => self.node(out),
            Some(next) if seq_at_same_indent && next.col == n && next.is_dash() => self.seq(n, out),
            _ => Ok(()),
        }
    }

    /// A block mapping whose keys sit at column `n`, into `out`. Not sized ahead: a
    /// `Value`'s `Map` is a `BTreeMap` (no `preserve_order`), which takes no capacity.
    /// (Gathering the entries in a `Vec` and building the map from them at once, sorted
    /// runs without a search, measured 8 % slower: the extra allocation costs more than
    /// the comparisons.)
    fn map(&mut self, n: usize, out: &mut T) -> Fast<()> {
        let mut map = T::new_map();
        while let Some(tok) = self.peek() {
            if tok.col != n || tok.is_dash() {
                if tok.col > n {
                    return Err(Unsupported);
                }
                break;
            }
            let Some(Tok {
                kind: Kind::Key(key), ..
            }) = self.toks.next()
            else {
                // A scalar line among the keys.
                return Err(Unsupported);
            };
            let slot = T::slot(&mut map, key);
            // A repeated key's value is replaced whole, not merged.
            *slot = T::leaf(Leaf::Null);
            match self.peek() {
                Some(tok) if !tok.first => {
                    *slot = self.scalar()?;
                    self.no_continuation(n)?;
                }
                _ => self.nested(n, true, slot)?,
            }
        }
        *out = T::map(map);
        Ok(())
    }

    /// Fails when the line after a scalar is indented deeper than `n` (a continuation).
    fn no_continuation(&self, n: usize) -> Fast<()> {
        match self.peek() {
            Some(next) if next.col > n => Err(Unsupported),
            _ => Ok(()),
        }
    }
}

/// Block scalar chomping.
#[derive(Debug, Clone, Copy)]
enum Chomp {
    Clip,
    Strip,
    Keep,
}

impl Chomp {
    fn apply(self, lines: &[&str]) -> String {
        let content = lines
            .iter()
            .rposition(|l| !l.trim().is_empty())
            .map_or(0, |i| i + 1);
        let mut out = lines[..content].join("\n");
        match self {
            Chomp::Strip => {}
            Chomp::Clip if content > 0 => out.push('\n'),
            Chomp::Clip => {}
            Chomp::Keep => out.extend(std::iter::repeat_n(
                '\n',
                lines.len() - content + usize::from(content > 0),
            )),
        }
        out
    }
}

/// Whether a line starting with `text` at column 0 is a document marker or directive,
/// which the fast reader leaves to the full parser.
pub fn is_document_marker(text: &str) -> bool {
    text.starts_with("---") || text.starts_with("...") || text.starts_with('%')
}

fn memchr_newline(s: &str) -> usize {
    s.bytes().position(|b| b == b'\n').unwrap_or(s.len())
}

fn is_seq_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// Cuts a ` #` comment off plain text.
fn strip_comment(text: &str) -> &str {
    let b = text.as_bytes();
    match (1..b.len()).find(|&i| b[i] == b'#' && matches!(b[i - 1], b' ' | b'\t')) {
        Some(i) => text[..i].trim_end(),
        None => text,
    }
}

/// The byte offset of the `:` that ends a plain key (followed by a space or the end),
/// looking no further than a comment.
fn plain_colon(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b':' if matches!(b.get(i + 1), None | Some(b' ' | b'\t')) => return Some(i),
            b'#' if i > 0 && matches!(b[i - 1], b' ' | b'\t') => return None,
            _ => {}
        }
    }
    None
}

/// Splits `key: rest`; `None` when the line is not a mapping entry.
fn split_key(text: &str) -> Fast<Option<(Cow<'_, str>, &str)>> {
    debug_assert!(!text.is_empty(), "lines are never empty");
    let (key, after) = match text.as_bytes()[0] {
        b'"' => quoted_key(text, double_quoted)?,
        b'\'' => quoted_key(text, single_quoted)?,
        b'{' | b'[' | b'&' | b'*' | b'!' | b'|' | b'>' | b'?' => return Ok(None),
        _ => {
            let Some(i) = plain_colon(text) else {
                return Ok(None);
            };
            (Cow::Borrowed(text[..i].trim_end()), &text[i..])
        }
    };
    match after.strip_prefix(':') {
        Some(rest) if rest.is_empty() || rest.starts_with([' ', '\t']) => Ok(Some((key, rest.trim_start()))),
        _ => Ok(None),
    }
}

fn quoted_key<'t>(text: &'t str, parse: fn(&str) -> Fast<(String, usize)>) -> Fast<(Cow<'t, str>, &'t str)> {
    let (key, used) = parse(text)?;
    Ok((Cow::Owned(key), text[used..].trim_start()))
}

/// Accepts a quoted scalar only when nothing but a comment follows it.
fn end_of_scalar((s, used): (String, usize), text: &str) -> Fast<String> {
    let rest = text[used..].trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(s)
    } else {
        Err(Unsupported)
    }
}

fn empty_flow(text: &str) -> Fast<Leaf<'static>> {
    let body = strip_comment(text);
    if body.len() < 2 {
        return Err(Unsupported);
    }
    let inner = body[1..body.len() - 1].trim();
    match (body.as_bytes()[0], body.as_bytes()[body.len() - 1]) {
        (b'{', b'}') if inner.is_empty() => Ok(Leaf::EmptyMap),
        (b'[', b']') if inner.is_empty() => Ok(Leaf::EmptySeq),
        _ => Err(Unsupported),
    }
}

/// A one-line double-quoted scalar at the start of `text`; returns it and the bytes used.
fn double_quoted(text: &str) -> Fast<(String, usize)> {
    let body = &text[1..];
    let close = body
        .bytes()
        .position(|b| b == b'"' || b == b'\\')
        .ok_or(Unsupported)?;
    if body.as_bytes()[close] == b'"' {
        return Ok((body[..close].to_owned(), close + 2));
    }
    let mut out = String::with_capacity(body.len());
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 2)),
            '\\' => out.push(yaml_escape(&mut chars)?),
            c => out.push(c),
        }
    }
    Err(Unsupported)
}

fn yaml_escape(chars: &mut std::str::CharIndices<'_>) -> Fast<char> {
    let (_, e) = chars.next().ok_or(Unsupported)?;
    let hex = |chars: &mut std::str::CharIndices<'_>, n: usize| -> Fast<char> {
        let digits: String = chars.take(n).map(|(_, c)| c).collect();
        let code = u32::from_str_radix(&digits, 16).map_err(|_| Unsupported)?;
        char::from_u32(code).ok_or(Unsupported)
    };
    Ok(match e {
        '0' => '\0',
        'a' => '\x07',
        'b' => '\x08',
        't' | '\t' => '\t',
        'n' => '\n',
        'v' => '\x0b',
        'f' => '\x0c',
        'r' => '\r',
        'e' => '\x1b',
        ' ' => ' ',
        '"' => '"',
        '/' => '/',
        '\\' => '\\',
        'N' => '\u{85}',
        '_' => '\u{a0}',
        'L' => '\u{2028}',
        'P' => '\u{2029}',
        'x' => hex(chars, 2)?,
        'u' => hex(chars, 4)?,
        'U' => hex(chars, 8)?,
        _ => return Err(Unsupported),
    })
}

/// A one-line single-quoted scalar (`''` is a quote).
fn single_quoted(text: &str) -> Fast<(String, usize)> {
    let mut out = String::new();
    let bytes = text.as_bytes();
    let mut i = 1;
    let mut start = 1;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            out.push_str(&text[start..i]);
            if bytes.get(i + 1) == Some(&b'\'') {
                out.push('\'');
                i += 2;
                start = i;
                continue;
            }
            return Ok((out, i + 1));
        }
        i += 1;
    }
    Err(Unsupported)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fast(text: &str) -> Option<Value> {
        super::fast(text).ok()
    }

    #[test]
    fn block_maps_and_sequences_should_read_as_json() {
        let text = "\n\nconditions:\n- type: Ready\n  status: \"True\"\n\n  n: 1\nlist:\n  - a\n  - 'b''c'\nempty:\nflow: {}\nseq: []\nf: 1.5\n";
        let want = json!({
            "conditions": [{"type": "Ready", "status": "True", "n": 1}],
            "list": ["a", "b'c"], "empty": null, "flow": {}, "seq": [], "f": 1.5
        });
        assert_eq!(fast(text), Some(want.clone()));
        assert_eq!(to_json(text).unwrap(), want);
    }

    #[test]
    fn plain_scalars_should_follow_the_yaml_1_2_core_schema() {
        let cases = [
            ("true", json!(true)),
            ("True", json!(true)),
            ("yes", json!("yes")),
            ("on", json!("on")),
            ("~", json!(null)),
            ("-12", json!(-12)),
            ("0x1F", json!(31)),
            ("1e3", json!(1000.0)),
            ("1Ti", json!("1Ti")),
            ("10.0.0.1", json!("10.0.0.1")),
            ("2024-01-01T00:00:00Z", json!("2024-01-01T00:00:00Z")),
        ];
        for (text, want) in cases {
            assert_eq!(
                to_json(&format!("k: {text}")).unwrap(),
                json!({ "k": want }),
                "{text}"
            );
        }
    }

    #[test]
    fn quoted_scalars_should_stay_strings() {
        assert_eq!(
            to_json("a: \"True\"\nb: '1'\nc: \"\\u00e9\\n\\t\"").unwrap(),
            json!({"a": "True", "b": "1", "c": "é\n\t"})
        );
    }

    #[test]
    fn literal_block_scalars_should_honour_chomping() {
        let text = "a: |\n  x\n    y\n\nb: |-\n  z\nc: x # comment\n";
        assert_eq!(fast(text), Some(json!({"a": "x\n  y\n", "b": "z", "c": "x"})));
    }

    #[test]
    fn nested_sequences_and_maps_in_items_should_read() {
        let text = "- - a\n  - b\n- k: v\n  l:\n  - 1\n";
        assert_eq!(fast(text), Some(json!([["a", "b"], {"k": "v", "l": [1]}])));
    }

    #[test]
    fn unsupported_constructs_should_fall_back_to_the_full_parser() {
        let text = "a: &x [1, 2]\nb: *x\nc: >\n  folded\n  text\n";
        assert!(fast(text).is_none());
        assert_eq!(
            to_json(text).unwrap(),
            json!({"a": [1, 2], "b": [1, 2], "c": "folded text\n"})
        );
    }

    #[test]
    fn nodes_should_write_the_json_of_their_value() {
        let v = json!({
            "plain": "kwok-node-0", "escaped": "a\"b\\c\nd\u{1}\u{7f}é",
            "numbers": [0, 1, -2, 1.5, 1e300, u64::MAX], "others": [true, false, null],
            "nested": {"k": [{"x": "y"}, [], {}]}
        });
        let mut out = String::new();
        Node::owned(v.clone()).write_json(&mut out);
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), v, "{out}");
        let empties = Node::Seq(vec![Node::Leaf(Leaf::EmptyMap), Node::Leaf(Leaf::EmptySeq)]);
        out.clear();
        empties.write_json(&mut out);
        assert_eq!(out, "[{},[]]");
        // A repeated key keeps its first place and its last value, as YAML reads it.
        let built: Node<'_> = build(vec![
            key("a", 0),
            scalar("1", 3),
            key("b", 0),
            scalar("2", 3),
            key("a", 0),
            scalar("3", 3),
        ])
        .unwrap();
        out.clear();
        built.write_json(&mut out);
        assert_eq!(out, r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn the_escape_check_should_flag_exactly_the_bytes_json_escapes() {
        let escapes = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
        // Every byte at every place of strings up to three words long, among bytes that
        // sit next to the flagged ones (a borrow must not make or hide a flag).
        for len in 1..=24 {
            for at in 0..len {
                for b in 0..=255u8 {
                    for fill in [b'a', 0x21, 0x5d, 0x80, 0xff, 0x1f] {
                        let mut s = vec![fill; len];
                        s[at] = b;
                        let want = s.iter().any(|&c| escapes(c));
                        assert_eq!(needs_escape(&s), want, "{s:?}");
                    }
                }
            }
        }
        assert!(!needs_escape(b""));
    }

    fn key(k: &'static str, col: usize) -> Tok<'static> {
        Tok {
            col,
            first: true,
            kind: Kind::Key(Cow::Borrowed(k)),
        }
    }

    fn scalar(v: &'static str, col: usize) -> Tok<'static> {
        Tok {
            col,
            first: false,
            kind: Kind::Scalar(scalar_value(v).unwrap()),
        }
    }

    #[test]
    fn empty_output_should_be_null() {
        assert_eq!(to_json("  \n\n").unwrap(), Value::Null);
    }

    #[test]
    fn invalid_yaml_should_be_a_render_error() {
        assert!(matches!(to_json("a: b: c"), Err(Error::Render(_))));
    }
}
