//! The lexer: splits template text into text runs and action tokens, applying trim markers.

use super::Error;

/// A literal number as written in the template.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer (also character constants).
    Int(i64),
    /// A float.
    Float(f64),
}

/// Keywords of the action language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    If,
    Else,
    End,
    Range,
    With,
    Define,
    Template,
    Block,
    Break,
    Continue,
}

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// Text outside actions, after trimming.
    Text(String),
    /// `{{`.
    Open,
    /// `}}`.
    Close,
    Pipe,
    LParen,
    RParen,
    Comma,
    /// `:=`.
    Declare,
    /// `=`.
    Assign,
    /// A string literal, unescaped.
    Str(String),
    Num(Number),
    Bool(bool),
    Nil,
    /// `.` alone.
    Dot,
    /// `.name`.
    Field(String),
    /// `$name` or `$`.
    Var(String),
    /// A function name.
    Ident(String),
    Kw(Keyword),
}

/// A token with where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// 1-based line.
    pub line: usize,
    /// Whether whitespace precedes it (separates `.a .b` from `.a.b`).
    pub space: bool,
}

/// Splits `src` into tokens.
pub fn lex(src: &str) -> Result<Vec<Token>, Error> {
    let mut lexer = Lexer {
        src,
        pos: 0,
        line: 1,
        tokens: Vec::new(),
        trim_next: false,
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    line: usize,
    tokens: Vec<Token>,
    /// The previous action ended with ` -}}`: trim the start of the next text.
    trim_next: bool,
}

fn err(line: usize, reason: impl Into<String>) -> Error {
    Error::Parse {
        line,
        reason: reason.into(),
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn peek(&self, n: usize) -> u8 {
        self.src.as_bytes().get(self.pos + n).copied().unwrap_or(0)
    }

    fn push(&mut self, tok: Tok, line: usize, space: bool) {
        self.tokens.push(Token { tok, line, space });
    }

    fn advance(&mut self, n: usize) {
        self.line += self.src[self.pos..self.pos + n]
            .bytes()
            .filter(|&b| b == b'\n')
            .count();
        self.pos += n;
    }

    fn run(&mut self) -> Result<(), Error> {
        while self.pos < self.src.len() {
            let end = self.rest().find("{{").map_or(self.src.len(), |i| self.pos + i);
            let trim_left = self.src[end..].starts_with("{{-")
                && is_space(self.src.as_bytes().get(end + 3).copied().unwrap_or(0));
            self.text(end, trim_left);
            if end == self.src.len() {
                break;
            }
            self.advance(if trim_left { 4 } else { 2 });
            self.action()?;
        }
        Ok(())
    }

    fn text(&mut self, end: usize, trim_right: bool) {
        let line = self.line;
        let mut text = &self.src[self.pos..end];
        if std::mem::take(&mut self.trim_next) {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
        }
        if trim_right {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
        }
        if !text.is_empty() {
            let text = text.to_owned();
            self.push(Tok::Text(text), line, false);
        }
        self.advance(end - self.pos);
    }

    /// Lexes one action after its `{{`.
    fn action(&mut self) -> Result<(), Error> {
        let start_line = self.line;
        self.skip_space();
        if self.rest().starts_with("/*") {
            return self.comment(start_line);
        }
        self.push(Tok::Open, start_line, false);
        loop {
            let space = self.skip_space();
            if self.pos >= self.src.len() {
                return Err(err(start_line, "unclosed action"));
            }
            if self.close(space) {
                return Ok(());
            }
            self.token(space)?;
        }
    }

    fn skip_space(&mut self) -> bool {
        let n = self.rest().bytes().take_while(|&b| is_space(b)).count();
        self.advance(n);
        n > 0
    }

    /// Consumes `}}` or `-}}` (after a space) if it comes next.
    fn close(&mut self, space: bool) -> bool {
        let line = self.line;
        if !self.eat_close(space) {
            return false;
        }
        self.push(Tok::Close, line, space);
        true
    }

    /// Skips `}}`, or `-}}` after a space (trimming what follows), without a token.
    fn eat_close(&mut self, space: bool) -> bool {
        if space && self.rest().starts_with("-}}") {
            self.advance(3);
            self.trim_next = true;
        } else if self.rest().starts_with("}}") {
            self.advance(2);
        } else {
            return false;
        }
        true
    }

    fn comment(&mut self, line: usize) -> Result<(), Error> {
        let Some(end) = self.rest().find("*/") else {
            return Err(err(line, "unclosed comment"));
        };
        self.advance(end + 2);
        let space = self.skip_space();
        if !self.eat_close(space) {
            return Err(err(line, "comment ends before closing delimiter"));
        }
        Ok(())
    }

    fn token(&mut self, space: bool) -> Result<(), Error> {
        let line = self.line;
        let c = self.peek(0);
        let simple = match c {
            b'|' => Some((Tok::Pipe, 1)),
            b'(' => Some((Tok::LParen, 1)),
            b')' => Some((Tok::RParen, 1)),
            b',' => Some((Tok::Comma, 1)),
            b'=' => Some((Tok::Assign, 1)),
            b':' if self.peek(1) == b'=' => Some((Tok::Declare, 2)),
            _ => None,
        };
        if let Some((tok, n)) = simple {
            self.advance(n);
            self.push(tok, line, space);
            return Ok(());
        }
        let tok = match c {
            b'"' => self.quoted()?,
            b'`' => self.raw()?,
            b'\'' => self.char_const()?,
            b'$' => Tok::Var(format!("${}", self.word(1))),
            b'.' if self.peek(1).is_ascii_digit() => self.number()?,
            b'.' if is_alnum(self.peek(1)) => Tok::Field(self.word(1)),
            b'.' => {
                self.advance(1);
                Tok::Dot
            }
            b'0'..=b'9' => self.number()?,
            b'+' | b'-' if self.peek(1).is_ascii_digit() || self.peek(1) == b'.' => self.number()?,
            c if is_alnum(c) => ident(self.word(0)),
            _ => {
                let ch = self.rest().chars().next().unwrap_or(' ');
                return Err(err(line, format!("unexpected \"{ch}\" in operand")));
            }
        };
        self.push(tok, line, space);
        Ok(())
    }

    /// Reads an identifier starting `skip` bytes ahead.
    fn word(&mut self, skip: usize) -> String {
        let n = self.src[self.pos + skip..]
            .bytes()
            .take_while(|&b| is_alnum(b))
            .count();
        let word = self.src[self.pos + skip..self.pos + skip + n].to_owned();
        self.advance(skip + n);
        word
    }

    fn number(&mut self) -> Result<Tok, Error> {
        let n = self
            .rest()
            .bytes()
            .take_while(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
            .count();
        let text = &self.src[self.pos..self.pos + n];
        let num = parse_number(text).ok_or_else(|| err(self.line, format!("bad number syntax: {text:?}")))?;
        self.advance(n);
        Ok(Tok::Num(num))
    }

    fn raw(&mut self) -> Result<Tok, Error> {
        let Some(end) = self.src[self.pos + 1..].find('`') else {
            return Err(err(self.line, "unterminated raw quoted string"));
        };
        let s = self.src[self.pos + 1..self.pos + 1 + end].to_owned();
        self.advance(end + 2);
        Ok(Tok::Str(s))
    }

    fn quoted(&mut self) -> Result<Tok, Error> {
        let (s, n) = unquote(&self.src[self.pos..], '"')
            .ok_or_else(|| err(self.line, "unterminated quoted string"))?;
        self.advance(n);
        Ok(Tok::Str(s))
    }

    fn char_const(&mut self) -> Result<Tok, Error> {
        let (s, n) = unquote(&self.src[self.pos..], '\'')
            .ok_or_else(|| err(self.line, "unterminated character constant"))?;
        let mut chars = s.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return Err(err(
                self.line,
                format!(
                    "malformed character constant: {}",
                    &self.src[self.pos..self.pos + n]
                ),
            ));
        };
        self.advance(n);
        Ok(Tok::Num(Number::Int(c as i64)))
    }
}

fn ident(word: String) -> Tok {
    let kw = match word.as_str() {
        "if" => Keyword::If,
        "else" => Keyword::Else,
        "end" => Keyword::End,
        "range" => Keyword::Range,
        "with" => Keyword::With,
        "define" => Keyword::Define,
        "template" => Keyword::Template,
        "block" => Keyword::Block,
        "break" => Keyword::Break,
        "continue" => Keyword::Continue,
        "true" => return Tok::Bool(true),
        "false" => return Tok::Bool(false),
        "nil" => return Tok::Nil,
        _ => return Tok::Ident(word),
    };
    Tok::Kw(kw)
}

/// Parses a Go number literal: decimal, `0x`, `0o`, `0b`, underscores, floats.
pub fn parse_number(text: &str) -> Option<Number> {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, digits) = match clean.as_bytes().first()? {
        b'-' => (true, &clean[1..]),
        b'+' => (false, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    let lower = digits.to_ascii_lowercase();
    let radix = [("0x", 16), ("0o", 8), ("0b", 2)]
        .into_iter()
        .find(|(p, _)| lower.starts_with(p));
    let int = match radix {
        Some((p, r)) => i64::from_str_radix(&digits[p.len()..], r).ok(),
        None if digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit()) => {
            i64::from_str_radix(&digits[1..], 8).ok()
        }
        None => digits.parse::<i64>().ok(),
    };
    if let Some(i) = int {
        return Some(Number::Int(if neg { -i } else { i }));
    }
    if radix.is_some()
        || !digits
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.')
    {
        return None;
    }
    let f: f64 = digits.parse().ok()?;
    Some(Number::Float(if neg { -f } else { f }))
}

/// Decodes a Go quoted string at the start of `s`; returns it and the bytes consumed.
pub fn unquote(s: &str, quote: char) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Some((out, i + 1)),
            '\n' => return None,
            '\\' => {
                let (_, e) = chars.next()?;
                let simple = match e {
                    'a' => Some('\x07'),
                    'b' => Some('\x08'),
                    'f' => Some('\x0c'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    'v' => Some('\x0b'),
                    '\\' | '"' | '\'' => Some(e),
                    _ => None,
                };
                match (simple, e) {
                    (Some(c), _) => out.push(c),
                    (None, 'x') => out.push(hex_escape(&mut chars, 2)?),
                    (None, 'u') => out.push(hex_escape(&mut chars, 4)?),
                    (None, 'U') => out.push(hex_escape(&mut chars, 8)?),
                    (None, '0'..='7') => {
                        let rest: String = (0..2).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
                        let code = u32::from_str_radix(&format!("{e}{rest}"), 8).ok()?;
                        out.push(char::from_u32(code)?);
                    }
                    _ => return None,
                }
            }
            c => out.push(c),
        }
    }
    None
}

fn hex_escape(chars: &mut impl Iterator<Item = (usize, char)>, n: usize) -> Option<char> {
    let digits: String = (0..n).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
    char::from_u32(u32::from_str_radix(&digits, 16).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn trim_markers_should_remove_adjacent_whitespace() {
        assert_eq!(
            toks("a  {{- 1 -}}\n b"),
            [
                Tok::Text("a".into()),
                Tok::Open,
                Tok::Num(Number::Int(1)),
                Tok::Close,
                Tok::Text("b".into())
            ]
        );
    }

    #[test]
    fn a_dash_without_space_should_be_a_negative_number() {
        assert_eq!(toks("{{-3}}"), [Tok::Open, Tok::Num(Number::Int(-3)), Tok::Close]);
    }

    #[test]
    fn comments_should_produce_no_tokens() {
        assert_eq!(
            toks("a {{- /* x\ny */ -}} b"),
            [Tok::Text("a".into()), Tok::Text("b".into())]
        );
    }

    #[test]
    fn strings_should_decode_go_escapes() {
        assert_eq!(toks(r#"{{"a\tb\x41\u00e9"}}"#)[1], Tok::Str("a\tbAé".into()));
        assert_eq!(toks("{{`a\\n`}}")[1], Tok::Str("a\\n".into()));
        assert_eq!(toks("{{'a'}}")[1], Tok::Num(Number::Int(97)));
    }

    #[test]
    fn numbers_should_parse_in_every_go_base() {
        let cases = [
            ("0x1F", Number::Int(31)),
            ("0o17", Number::Int(15)),
            ("1_000", Number::Int(1000)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_number(text), Some(want), "{text}");
        }
        assert_eq!(parse_number("1.5e3"), Some(Number::Float(1500.0)));
        assert_eq!(parse_number("1x"), None);
    }

    #[test]
    fn an_unclosed_action_should_report_its_line() {
        assert_eq!(
            lex("a\n{{ .x").unwrap_err(),
            Error::Parse {
                line: 2,
                reason: "unclosed action".into()
            }
        );
    }

    #[test]
    fn an_unexpected_character_should_be_reported() {
        let e = lex("\n\n{{ } }}").unwrap_err();
        assert_eq!(e.to_string(), "line 3: unexpected \"}\" in operand");
    }
}
