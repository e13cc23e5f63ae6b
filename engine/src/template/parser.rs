//! The parser: turns tokens into [`Tree`], resolving function names and variable slots.

use super::{
    Error,
    ast::{Arg, Body, Cmd, Cond, Lit, Node, Pipe, Range, Slot},
    funcs::Func,
    lexer::{Keyword, Number, Tok, Token, lex},
    tokens::{self, Text},
};

/// A parsed template: the main body and the `define`d ones.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// The template itself.
    pub main: Body,
    /// Definitions by index; `None` when only invoked, never defined.
    pub defs: Vec<Option<Body>>,
    /// Names of the definitions, same indexes.
    pub names: Vec<Box<str>>,
    /// Whether every text node has its YAML tokens (see [`tokens`]).
    pub planned: bool,
}

/// Parses template text; `scale` admits the functions of `kwokctl scale` templates.
pub fn parse(src: &str, scale: bool) -> Result<Tree, Error> {
    let mut p = Parser {
        scale,
        toks: lex(src)?,
        pos: 0,
        scope: Vec::new(),
        slots: 1,
        range_depth: 0,
        nesting: 0,
        tree: Tree::default(),
    };
    let (nodes, stop) = p.list()?;
    match stop {
        Stop::Eof => {}
        Stop::End(line) => return Err(err(line, "unexpected {{end}}")),
        Stop::Else(line) => return Err(err(line, "unexpected {{else}}")),
    }
    p.tree.main = Body {
        nodes,
        slots: p.slots,
    };
    p.tree.planned = tokens::planned(&p.tree);
    Ok(p.tree)
}

/// Why a list of nodes ended.
enum Stop {
    Eof,
    End(usize),
    Else(usize),
}

/// What a pipeline may declare.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Decl {
    None,
    One,
    Range,
}

struct Parser {
    /// Whether [`Func::scale_only`] functions are defined.
    scale: bool,
    toks: Vec<Token>,
    pos: usize,
    /// Visible variables, innermost last; `$` is implicit (slot 0).
    scope: Vec<(String, Slot)>,
    /// Slots allocated in the body being parsed.
    slots: usize,
    range_depth: usize,
    /// Open `if`/`with`/`range` controls (`define` is only allowed at the top).
    nesting: usize,
    tree: Tree,
}

fn err(line: usize, reason: impl Into<String>) -> Error {
    Error::Parse {
        line,
        reason: reason.into(),
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Text(_) => "text".into(),
        Tok::Open => "\"{{\"".into(),
        Tok::Close => "\"}}\"".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Num(Number::Int(i)) => i.to_string(),
        Tok::Num(Number::Float(f)) => f.to_string(),
        Tok::Bool(b) => b.to_string(),
        Tok::Nil => "nil".into(),
        Tok::Dot => "\".\"".into(),
        Tok::Field(f) => format!(".{f}"),
        Tok::Var(v) => v.clone(),
        Tok::Ident(i) => i.clone(),
        Tok::Kw(k) => format!("<{}>", format!("{k:?}").to_lowercase()),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn peek_tok(&self, ahead: usize) -> Option<&Tok> {
        self.toks.get(self.pos + ahead).map(|t| &t.tok)
    }

    fn line(&self) -> usize {
        self.peek().or(self.toks.last()).map_or(1, |t| t.line)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += usize::from(t.is_some());
        t
    }

    fn expect(&mut self, want: &Tok, context: &str) -> Result<(), Error> {
        let line = self.line();
        match self.next() {
            Some(t) if &t.tok == want => Ok(()),
            Some(t) => Err(err(
                t.line,
                format!("unexpected {} in {context}", describe(&t.tok)),
            )),
            None => Err(err(line, format!("unexpected EOF in {context}"))),
        }
    }

    /// Parses nodes up to `{{end}}`, `{{else` or the end of input.
    fn list(&mut self) -> Result<(Vec<Node>, Stop), Error> {
        let mut nodes = Vec::new();
        while let Some(t) = self.next() {
            match t.tok {
                Tok::Text(s) => nodes.push(Node::Text(Box::new(Text::new(s)))),
                Tok::Open => match self.action(t.line)? {
                    Ok(node) => nodes.extend(node),
                    Err(stop) => return Ok((nodes, stop)),
                },
                tok => return Err(err(t.line, format!("unexpected {}", describe(&tok)))),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    /// Parses one action after `{{`: a node (none for `define`), or where a list stops.
    fn action(&mut self, line: usize) -> Result<Result<Option<Node>, Stop>, Error> {
        let kw = match self.peek_tok(0) {
            Some(Tok::Kw(k)) => *k,
            _ => {
                let pipe = self.pipeline(Decl::One, "command")?;
                self.expect(&Tok::Close, "command")?;
                return Ok(Ok(Some(Node::Action(pipe))));
            }
        };
        self.pos += 1;
        let node = match kw {
            Keyword::End => {
                self.expect(&Tok::Close, "end")?;
                return Ok(Err(Stop::End(line)));
            }
            Keyword::Else => return Ok(Err(Stop::Else(line))),
            Keyword::If | Keyword::With | Keyword::Range => {
                self.nesting += 1;
                let node = match kw {
                    Keyword::Range => self.range(line).map(|r| Node::Range(Box::new(r))),
                    _ => self
                        .cond(kw == Keyword::With, line)
                        .map(|c| Node::Cond(Box::new(c))),
                };
                self.nesting -= 1;
                node?
            }
            Keyword::Template => self.template(line)?,
            Keyword::Block => self.block(line)?,
            Keyword::Define => {
                self.define(line)?;
                return Ok(Ok(None));
            }
            Keyword::Break | Keyword::Continue => self.loop_control(kw, line)?,
        };
        Ok(Ok(Some(node)))
    }

    fn loop_control(&mut self, kw: Keyword, line: usize) -> Result<Node, Error> {
        let name = if kw == Keyword::Break { "break" } else { "continue" };
        if self.range_depth == 0 {
            return Err(err(line, format!("{{{{{name}}}}} outside {{{{range}}}}")));
        }
        self.expect(&Tok::Close, name)?;
        Ok(if kw == Keyword::Break {
            Node::Break
        } else {
            Node::Continue
        })
    }

    /// `if`/`with` after the keyword, through its `{{end}}`.
    fn cond(&mut self, with: bool, line: usize) -> Result<Cond, Error> {
        let (name, kw) = if with {
            ("with", Keyword::With)
        } else {
            ("if", Keyword::If)
        };
        let mark = self.scope.len();
        let mut cond = Cond {
            with,
            arms: Vec::new(),
            otherwise: Vec::new(),
        };
        loop {
            let pipe = self.pipeline(Decl::One, name)?;
            self.expect(&Tok::Close, name)?;
            let (body, stop) = self.list()?;
            cond.arms.push((pipe, body));
            match stop {
                Stop::End(_) => break,
                Stop::Eof => {
                    return Err(err(
                        line,
                        format!("unexpected EOF: missing {{{{end}}}} for {{{{{name}}}}}"),
                    ));
                }
                Stop::Else(_) if self.peek_tok(0) == Some(&Tok::Kw(kw)) => self.pos += 1,
                Stop::Else(_) => {
                    self.expect(&Tok::Close, "else")?;
                    cond.otherwise = self.end_list(line, name)?;
                    break;
                }
            }
        }
        self.scope.truncate(mark);
        Ok(cond)
    }

    /// The `else` list of a control, which must stop at `{{end}}`.
    fn end_list(&mut self, line: usize, name: &str) -> Result<Vec<Node>, Error> {
        let (nodes, stop) = self.list()?;
        match stop {
            Stop::End(_) => Ok(nodes),
            Stop::Else(l) => Err(err(l, "expected end; found {{else}}")),
            Stop::Eof => Err(err(
                line,
                format!("unexpected EOF: missing {{{{end}}}} for {{{{{name}}}}}"),
            )),
        }
    }

    fn range(&mut self, line: usize) -> Result<Range, Error> {
        let mark = self.scope.len();
        let mut pipe = self.pipeline(Decl::Range, "range")?;
        self.expect(&Tok::Close, "range")?;
        let decl = std::mem::take(&mut pipe.decl);
        let (key, value) = match decl[..] {
            [k, v] => (Some(k), Some(v)),
            [v] => (None, Some(v)),
            _ => (None, None),
        };
        self.range_depth += 1;
        let listed = self.list();
        self.range_depth -= 1;
        let (body, stop) = listed?;
        let otherwise = match stop {
            Stop::End(_) => Vec::new(),
            Stop::Eof => return Err(err(line, "unexpected EOF: missing {{end}} for {{range}}")),
            Stop::Else(_) => {
                self.expect(&Tok::Close, "else")?;
                self.end_list(line, "range")?
            }
        };
        self.scope.truncate(mark);
        Ok(Range {
            pipe,
            key,
            value,
            body,
            otherwise,
        })
    }

    fn template_name(&mut self, context: &str) -> Result<usize, Error> {
        let line = self.line();
        let Some(Token {
            tok: Tok::Str(name), ..
        }) = self.next()
        else {
            return Err(err(line, format!("expected template name in {context}")));
        };
        let index = match self.tree.names.iter().position(|n| **n == *name) {
            Some(i) => i,
            None => {
                self.tree.names.push(name.into());
                self.tree.defs.push(None);
                self.tree.names.len() - 1
            }
        };
        Ok(index)
    }

    fn template(&mut self, line: usize) -> Result<Node, Error> {
        let index = self.template_name("template")?;
        let pipe = match self.peek_tok(0) {
            Some(Tok::Close) => None,
            _ => Some(self.pipeline(Decl::None, "template")?),
        };
        self.expect(&Tok::Close, "template")?;
        Ok(Node::Template { index, pipe, line })
    }

    fn define(&mut self, line: usize) -> Result<usize, Error> {
        if self.nesting > 0 {
            return Err(err(line, "unexpected <define> in command"));
        }
        let index = self.template_name("define")?;
        self.expect(&Tok::Close, "define")?;
        self.definition(index, line, "define")?;
        Ok(index)
    }

    fn block(&mut self, line: usize) -> Result<Node, Error> {
        let index = self.template_name("block")?;
        let pipe = self.pipeline(Decl::None, "block")?;
        self.expect(&Tok::Close, "block")?;
        self.definition(index, line, "block")?;
        Ok(Node::Template {
            index,
            pipe: Some(pipe),
            line,
        })
    }

    /// Parses a definition body through `{{end}}` in a fresh variable frame.
    fn definition(&mut self, index: usize, line: usize, name: &str) -> Result<(), Error> {
        let saved_scope = std::mem::take(&mut self.scope);
        let saved_slots = std::mem::replace(&mut self.slots, 1);
        let nodes = self.end_list(line, name);
        let slots = std::mem::replace(&mut self.slots, saved_slots);
        self.scope = saved_scope;
        self.tree.defs[index] = Some(Body { nodes: nodes?, slots });
        Ok(())
    }

    /// A pipeline up to (not including) `}}` or `)`.
    fn pipeline(&mut self, decl: Decl, context: &str) -> Result<Pipe, Error> {
        let line = self.line();
        let (names, assign) = self.declarations(decl);
        let mut cmds = Vec::new();
        loop {
            cmds.push(self.command(context)?);
            if self.peek_tok(0) != Some(&Tok::Pipe) {
                break;
            }
            self.pos += 1;
        }
        if cmds.iter().skip(1).any(|c| matches!(c, Cmd::Arg(_))) {
            return Err(err(line, "can't give argument to non-function"));
        }
        let decl = names
            .iter()
            .map(|n| self.bind(n, assign, line))
            .collect::<Result<_, _>>()?;
        Ok(Pipe { decl, cmds, line })
    }

    /// Reads `$x :=`, `$x =` or (in `range`) `$k, $v :=`.
    fn declarations(&mut self, decl: Decl) -> (Vec<String>, bool) {
        let var = |t: Option<&Tok>| match t {
            Some(Tok::Var(v)) => Some(v.clone()),
            _ => None,
        };
        if decl == Decl::None {
            return (Vec::new(), false);
        }
        match (var(self.peek_tok(0)), self.peek_tok(1)) {
            (Some(v), Some(Tok::Declare)) => {
                self.pos += 2;
                (vec![v], false)
            }
            (Some(v), Some(Tok::Assign)) => {
                self.pos += 2;
                (vec![v], true)
            }
            (Some(k), Some(Tok::Comma)) if decl == Decl::Range => {
                match (var(self.peek_tok(2)), self.peek_tok(3)) {
                    (Some(v), Some(Tok::Declare | Tok::Assign)) => {
                        let assign = self.peek_tok(3) == Some(&Tok::Assign);
                        self.pos += 4;
                        (vec![k, v], assign)
                    }
                    _ => (Vec::new(), false),
                }
            }
            _ => (Vec::new(), false),
        }
    }

    /// Declares a new slot for `name`, or finds it for an assignment.
    fn bind(&mut self, name: &str, assign: bool, line: usize) -> Result<Slot, Error> {
        if assign {
            return self
                .lookup(name)
                .ok_or_else(|| err(line, format!("undefined variable {name:?}")));
        }
        let slot = self.slots;
        self.slots += 1;
        self.scope.push((name.to_owned(), slot));
        Ok(slot)
    }

    /// The function `name`, if this dialect defines it.
    fn func(&self, name: &str) -> Option<Func> {
        Func::lookup(name).filter(|f| self.scale || !f.scale_only())
    }

    fn lookup(&self, name: &str) -> Option<Slot> {
        if name == "$" {
            return Some(0);
        }
        self.scope.iter().rev().find(|(n, _)| n == name).map(|(_, s)| *s)
    }

    fn at_command_end(&self) -> bool {
        matches!(
            self.peek_tok(0),
            None | Some(Tok::Close | Tok::RParen | Tok::Pipe)
        )
    }

    fn command(&mut self, context: &str) -> Result<Cmd, Error> {
        let line = self.line();
        if self.at_command_end() {
            return Err(err(line, format!("missing value for {context}")));
        }
        if let Some(Tok::Ident(name)) = self.peek_tok(0) {
            let f = self
                .func(name)
                .ok_or_else(|| err(line, format!("function {name:?} not defined")))?;
            self.pos += 1;
            let mut args = Vec::new();
            while !self.at_command_end() {
                args.push(self.operand()?);
            }
            return Ok(Cmd::Call(f, args));
        }
        let arg = self.operand()?;
        if matches!(arg, Arg::Nil) {
            return Err(err(line, "nil is not a command"));
        }
        if !self.at_command_end() {
            return Err(err(line, "can't give argument to non-function"));
        }
        Ok(Cmd::Arg(arg))
    }

    fn operand(&mut self) -> Result<Arg, Error> {
        let line = self.line();
        let Some(t) = self.next() else {
            return Err(err(line, "unexpected EOF in operand"));
        };
        let arg = match t.tok {
            Tok::Dot => Arg::Dot,
            Tok::Nil => Arg::Nil,
            Tok::Str(s) => Arg::Lit(Lit::Str(s.into())),
            Tok::Num(Number::Int(i)) => Arg::Lit(Lit::Int(i)),
            Tok::Num(Number::Float(f)) => Arg::Lit(Lit::Float(f)),
            Tok::Bool(b) => Arg::Lit(Lit::Bool(b)),
            Tok::Field(f) => {
                let mut chain = vec![f.into_boxed_str()];
                chain.extend(self.chain());
                Arg::Field(chain.into())
            }
            Tok::Var(v) => {
                let slot = self
                    .lookup(&v)
                    .ok_or_else(|| err(t.line, format!("undefined variable {v:?}")))?;
                Arg::Var(slot, self.chain().into())
            }
            Tok::LParen => {
                let pipe = self.pipeline(Decl::One, "parenthesized pipeline")?;
                self.expect(&Tok::RParen, "parenthesized pipeline")?;
                Arg::Pipe(Box::new(pipe), self.chain().into())
            }
            Tok::Ident(name) => Arg::Call(
                self.func(&name)
                    .ok_or_else(|| err(t.line, format!("function {name:?} not defined")))?,
            ),
            tok => return Err(err(t.line, format!("unexpected {} in operand", describe(&tok)))),
        };
        Ok(arg)
    }

    /// Field names directly following an operand (`$x.a.b`, `(…).a`).
    fn chain(&mut self) -> Vec<Box<str>> {
        let mut chain = Vec::new();
        while let Some(Token {
            tok: Tok::Field(f),
            space: false,
            ..
        }) = self.peek()
        {
            chain.push(f.as_str().into());
            self.pos += 1;
        }
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(src: &str) -> String {
        parse(src, false).unwrap_err().to_string()
    }

    #[test]
    fn unknown_functions_should_be_a_parse_error() {
        assert_eq!(
            parse_err("a\n{{ Foo 1 }}"),
            "line 2: function \"Foo\" not defined"
        );
    }

    #[test]
    fn a_missing_end_should_name_the_opening_action() {
        assert_eq!(
            parse_err("{{ if .a }}\nx"),
            "line 1: unexpected EOF: missing {{end}} for {{if}}"
        );
        assert_eq!(parse_err("x {{ end }}"), "line 1: unexpected {{end}}");
    }

    #[test]
    fn undefined_variables_should_be_a_parse_error() {
        assert_eq!(parse_err("{{ $x }}"), "line 1: undefined variable \"$x\"");
        assert_eq!(
            parse_err("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}"),
            "line 1: undefined variable \"$y\""
        );
    }

    #[test]
    fn break_outside_range_should_be_rejected() {
        assert_eq!(parse_err("{{ break }}"), "line 1: {{break}} outside {{range}}");
    }

    #[test]
    fn variables_should_get_distinct_slots() {
        let tree = parse("{{ $a := 1 }}{{ range $i, $v := . }}{{ end }}", false).unwrap();
        assert_eq!(tree.main.slots, 4);
    }

    #[test]
    fn an_empty_action_should_be_rejected() {
        assert_eq!(parse_err("{{ }}"), "line 1: missing value for command");
    }
}
