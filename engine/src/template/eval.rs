//! The executor: walks a [`Tree`] over JSON data and writes the output.

use serde_json::Value;

use super::{
    Error,
    ast::{Arg, Body, Cmd, Cond, Lit, Node, Pipe, Range},
    format::sorted_entries,
    funcs::Func,
    kwok,
    parser::Tree,
    sprig,
    tokens::{Event, Quoted, Text, print_value},
    value::{CallError, CallResult, FnResult, Val, View},
};
use crate::host::Host;

/// How deep `template` calls may nest before rendering fails.
const MAX_TEMPLATE_DEPTH: usize = 100;

/// Arguments up to this count are evaluated into a stack array, more into a `Vec`.
const INLINE_ARGS: usize = 4;

/// Renders `tree` with `data` as dot and `$`.
pub fn execute<'a>(
    tree: &'a Tree,
    data: &'a Value,
    host: &mut dyn Host,
    out: &mut impl Out<'a>,
) -> Result<(), Error> {
    let root = Val::from_data(data);
    let mut exec = Exec {
        tree,
        host,
        vars: frame(&tree.main, &root),
        depth: 0,
    };
    exec.run(&tree.main.nodes, &root, out)?;
    Ok(())
}

fn frame<'a>(body: &Body, dot: &Val<'a>) -> Vec<Val<'a>> {
    let mut vars = vec![Val::Nil; body.slots.max(1)];
    vars[0] = dot.clone();
    vars
}

/// `e` at template line `line`; a full IP pool stays typed.
fn at(line: usize, e: impl Into<CallError>) -> Error {
    match e.into() {
        CallError::Failed(e) => Error::Render(format!("line {line}: {e}")),
        CallError::PoolExhausted(e) => Error::PoolExhausted {
            line,
            func: e.func,
            exhausted: e.exhausted,
        },
    }
}

/// Where a rendering goes: text, or a record of what it printed ([`Event`]s).
pub trait Out<'a> {
    /// A literal text node.
    fn text(&mut self, text: &'a Text);
    /// A value an action printed, `quoted` by `Quote`.
    fn value(&mut self, v: Val<'a>, quoted: Quoted);
    /// What an action ending in `YAML v levels` printed.
    fn yaml(&mut self, v: Val<'a>, levels: usize);
}

impl<'a> Out<'a> for String {
    fn text(&mut self, text: &'a Text) {
        self.push_str(&text.raw);
    }

    fn value(&mut self, v: Val<'a>, quoted: Quoted) {
        print_value(&v, quoted, self);
    }

    fn yaml(&mut self, v: Val<'a>, levels: usize) {
        kwok::write_yaml_indented(v.view(), levels, self);
    }
}

impl<'a> Out<'a> for Vec<Event<'a>> {
    fn text(&mut self, text: &'a Text) {
        self.push(Event::Text(text));
    }

    fn value(&mut self, v: Val<'a>, quoted: Quoted) {
        self.push(Event::Value(v, quoted));
    }

    fn yaml(&mut self, v: Val<'a>, levels: usize) {
        self.push(Event::Yaml(v, levels));
    }
}

/// What a node asks of the enclosing `range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

/// One rendering: the variable frame of the body being run.
struct Exec<'a, 'h> {
    tree: &'a Tree,
    host: &'h mut dyn Host,
    /// Variables by slot; `vars[0]` is `$`.
    vars: Vec<Val<'a>>,
    depth: usize,
}

impl<'a> Exec<'a, '_> {
    fn run<O: Out<'a>>(&mut self, nodes: &'a [Node], dot: &Val<'a>, out: &mut O) -> Result<Flow, Error> {
        for node in nodes {
            let flow = self.node(node, dot, out)?;
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn node<O: Out<'a>>(&mut self, node: &'a Node, dot: &Val<'a>, out: &mut O) -> Result<Flow, Error> {
        match node {
            Node::Text(t) => out.text(t),
            Node::Action(pipe) => self.action(pipe, dot, out).map_err(|e| at(pipe.line, e))?,
            Node::Cond(c) => return self.cond(c, dot, out),
            Node::Range(r) => return self.range(r, dot, out),
            Node::Template { index, pipe, line } => self.template(*index, pipe.as_ref(), *line, dot, out)?,
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    /// Prints a pipeline; `… | Quote` is written straight into `out`.
    fn action<O: Out<'a>>(&mut self, pipe: &'a Pipe, dot: &Val<'a>, out: &mut O) -> Result<(), CallError> {
        if pipe.decl.is_empty()
            && let Some((Cmd::Call(Func::KQuote, args), init)) = pipe.cmds.split_last()
        {
            let piped = self.eval_cmds(init, dot)?;
            let arg = match (&args[..], piped) {
                ([a], None) => self.eval_arg(a, dot)?,
                ([], Some(p)) => p,
                (_, piped) => self.call(Func::KQuote, args, dot, piped)?,
            };
            out.value(arg, true);
            return Ok(());
        }
        if pipe.decl.is_empty()
            && let Some((Cmd::Call(Func::Yaml, args), init)) = pipe.cmds.split_last()
        {
            return self.yaml(args, init, dot, out);
        }
        let v = self.eval_pipe(pipe, dot)?;
        if pipe.decl.is_empty() {
            out.value(v, false);
        }
        Ok(())
    }

    /// Prints `… | YAML v [indent]` as the value and its indent, so that the tokens can
    /// be had without marshalling (`Out::yaml`); errors as the call's.
    fn yaml<O: Out<'a>>(
        &mut self,
        args: &'a [Arg],
        init: &'a [Cmd],
        dot: &Val<'a>,
        out: &mut O,
    ) -> Result<(), CallError> {
        let piped = self.eval_cmds(init, dot)?;
        let n = args.len() + usize::from(piped.is_some());
        if !(1..=2).contains(&n) {
            // The call reports the wrong number of arguments.
            return self.call(Func::Yaml, args, dot, piped).map(drop);
        }
        let mut buf: [Val<'a>; 2] = Default::default();
        self.fill(&mut buf[..n], args, dot, piped)?;
        match kwok::yaml_levels(buf[..n].get(1)) {
            Ok(levels) => {
                let [v, _] = buf;
                out.yaml(v, levels);
                Ok(())
            }
            Err(_) => Func::Yaml
                .call(&buf[..n], &mut *self.host)
                .map(|v| out.value(v, false)),
        }
    }

    fn cond<O: Out<'a>>(&mut self, c: &'a Cond, dot: &Val<'a>, out: &mut O) -> Result<Flow, Error> {
        for (pipe, body) in &c.arms {
            let v = self.eval_pipe(pipe, dot).map_err(|e| at(pipe.line, e))?;
            if v.truth() {
                return self.run(body, if c.with { &v } else { dot }, out);
            }
        }
        self.run(&c.otherwise, dot, out)
    }

    fn range<O: Out<'a>>(&mut self, r: &'a Range, dot: &Val<'a>, out: &mut O) -> Result<Flow, Error> {
        let v = self.eval_pipe(&r.pipe, dot).map_err(|e| at(r.pipe.line, e))?;
        let mut looped = false;
        let mut each = |exec: &mut Self, key: Val<'a>, elem: Val<'a>| -> Result<bool, Error> {
            looped = true;
            exec.iteration(r, key, elem, out)
        };
        match v {
            Val::Data(Value::Array(l)) => {
                for (i, e) in l.iter().enumerate() {
                    if !each(self, Val::Int(i as i64), Val::from_data(e))? {
                        break;
                    }
                }
            }
            Val::Data(Value::Object(m)) => {
                for (k, e) in sorted_entries(m) {
                    if !each(self, Val::Str(k), Val::from_data(e))? {
                        break;
                    }
                }
            }
            Val::Owned(rc) => {
                for (k, e) in owned_items(&rc) {
                    if !each(self, k, e)? {
                        break;
                    }
                }
            }
            Val::Int(n) => {
                for i in 0..n {
                    if !each(self, Val::Int(i), Val::Int(i))? {
                        break;
                    }
                }
            }
            Val::Nil => {}
            v => {
                return Err(at(
                    r.pipe.line,
                    format!("range can't iterate over {}", super::format::sprint(&v)),
                ));
            }
        }
        if looped {
            Ok(Flow::Normal)
        } else {
            self.run(&r.otherwise, dot, out)
        }
    }

    /// Runs the range body once; `false` on `break`.
    fn iteration<O: Out<'a>>(
        &mut self,
        r: &'a Range,
        key: Val<'a>,
        elem: Val<'a>,
        out: &mut O,
    ) -> Result<bool, Error> {
        if let Some(k) = r.key
            && let Some(slot) = self.vars.get_mut(k)
        {
            *slot = key;
        }
        if let Some(v) = r.value
            && let Some(slot) = self.vars.get_mut(v)
        {
            *slot = elem.clone();
        }
        Ok(self.run(&r.body, &elem, out)? != Flow::Break)
    }

    fn template<O: Out<'a>>(
        &mut self,
        index: usize,
        pipe: Option<&'a Pipe>,
        line: usize,
        dot: &Val<'a>,
        out: &mut O,
    ) -> Result<(), Error> {
        let tree = self.tree;
        let Some(Some(body)) = tree.defs.get(index) else {
            return Err(at(
                line,
                format!("no such template {:?}", tree.names.get(index).map_or("", |n| n)),
            ));
        };
        if self.depth >= MAX_TEMPLATE_DEPTH {
            return Err(at(
                line,
                format!("exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})"),
            ));
        }
        let new_dot = match pipe {
            Some(p) => self.eval_pipe(p, dot).map_err(|e| at(line, e))?,
            None => Val::Nil,
        };
        let saved = std::mem::replace(&mut self.vars, frame(body, &new_dot));
        self.depth += 1;
        let result = self.run(&body.nodes, &new_dot, out);
        self.depth -= 1;
        self.vars = saved;
        result.map(|_| ())
    }

    fn eval_pipe(&mut self, pipe: &'a Pipe, dot: &Val<'a>) -> CallResult<'a> {
        // One command, as most pipelines are, without an `Option` around its result.
        let v = match &pipe.cmds[..] {
            [first] => self.eval_first(first, dot)?,
            cmds => self.eval_cmds(cmds, dot)?.unwrap_or_default(),
        };
        for &slot in &pipe.decl {
            if let Some(var) = self.vars.get_mut(slot) {
                *var = v.clone();
            }
        }
        Ok(v)
    }

    /// Runs commands in order, piping each result into the next; `None` for no commands.
    fn eval_cmds(&mut self, cmds: &'a [Cmd], dot: &Val<'a>) -> Result<Option<Val<'a>>, CallError> {
        let Some((first, rest)) = cmds.split_first() else {
            return Ok(None);
        };
        // The result carried as a value, not in an `Option` taken at each command: the
        // executor stalled reloading it.
        let mut piped = self.eval_first(first, dot)?;
        for cmd in rest {
            piped = match cmd {
                Cmd::Arg(a) => self.eval_arg(a, dot)?,
                Cmd::Call(f, args) => self.call(*f, args, dot, Some(piped))?,
            };
        }
        Ok(Some(piped))
    }

    /// A pipeline's first command, which nothing is piped into.
    fn eval_first(&mut self, cmd: &'a Cmd, dot: &Val<'a>) -> CallResult<'a> {
        match cmd {
            Cmd::Arg(a) => self.eval_arg(a, dot),
            Cmd::Call(f, args) => self.call(*f, args, dot, None),
        }
    }

    fn eval_arg(&mut self, arg: &'a Arg, dot: &Val<'a>) -> CallResult<'a> {
        match arg {
            Arg::Dot => Ok(dot.clone()),
            Arg::Nil => Ok(Val::Nil),
            Arg::Lit(l) => Ok(literal(l)),
            Arg::Field(chain) => Ok(walk(dot.clone(), chain)?),
            Arg::Var(slot, chain) => Ok(walk(self.vars.get(*slot).cloned().unwrap_or_default(), chain)?),
            Arg::Pipe(p, chain) => {
                let v = self.eval_pipe(p, dot)?;
                Ok(walk(v, chain)?)
            }
            Arg::Call(f) => self.call(*f, &[], dot, None),
        }
    }

    fn call(&mut self, f: Func, args: &'a [Arg], dot: &Val<'a>, piped: Option<Val<'a>>) -> CallResult<'a> {
        match (f, args.first()) {
            (Func::And | Func::Or, _) => self.short_circuit(f, args, dot, piped),
            (Func::Set | Func::Unset, Some(Arg::Var(slot, chain))) if chain.is_empty() => {
                self.mutate(f, *slot, &args[1..], dot, piped)
            }
            _ => {
                let n = args.len() + usize::from(piped.is_some());
                if n <= INLINE_ARGS {
                    let mut buf: [Val<'a>; INLINE_ARGS] = Default::default();
                    self.fill(&mut buf[..n], args, dot, piped)?;
                    f.call(&buf[..n], &mut *self.host)
                } else {
                    let mut buf = vec![Val::Nil; n];
                    self.fill(&mut buf, args, dot, piped)?;
                    f.call(&buf, &mut *self.host)
                }
            }
        }
    }

    /// Evaluates `args` (then `piped`) into `buf`, which has room for exactly all of them.
    fn fill(
        &mut self,
        buf: &mut [Val<'a>],
        args: &'a [Arg],
        dot: &Val<'a>,
        piped: Option<Val<'a>>,
    ) -> Result<(), CallError> {
        debug_assert_eq!(
            buf.len(),
            args.len() + usize::from(piped.is_some()),
            "argument buffer size"
        );
        for (slot, a) in buf.iter_mut().zip(args) {
            *slot = self.eval_arg(a, dot)?;
        }
        if let (Some(p), Some(last)) = (piped, buf.last_mut()) {
            *last = p;
        }
        Ok(())
    }

    /// `and`/`or`: evaluates arguments only until one decides.
    fn short_circuit(
        &mut self,
        f: Func,
        args: &'a [Arg],
        dot: &Val<'a>,
        piped: Option<Val<'a>>,
    ) -> CallResult<'a> {
        if args.is_empty() && piped.is_none() {
            return f.call(&[], &mut *self.host);
        }
        let decides = |v: &Val<'_>| if f == Func::And { !v.truth() } else { v.truth() };
        let mut last = Val::Nil;
        for a in args {
            last = self.eval_arg(a, dot)?;
            if decides(&last) {
                return Ok(last);
            }
        }
        Ok(piped.unwrap_or(last))
    }

    /// `set $d k v` / `unset $d k` on a variable: updates the variable in place, as Go's
    /// shared maps would.
    fn mutate(
        &mut self,
        f: Func,
        slot: usize,
        rest: &'a [Arg],
        dot: &Val<'a>,
        piped: Option<Val<'a>>,
    ) -> CallResult<'a> {
        let want = if f == Func::Set { 2 } else { 1 };
        let mut vals: [Val<'a>; 2] = Default::default();
        let n = rest.len() + usize::from(piped.is_some());
        if n != want {
            return f.call(&vec![Val::Nil; n + 1], &mut *self.host);
        }
        self.fill(&mut vals[..n], rest, dot, piped)?;
        let Some(var) = self.vars.get_mut(slot) else {
            return Ok(Val::Nil);
        };
        let dict = std::mem::take(var);
        let result = match f {
            Func::Set => sprig::set(dict.clone(), &vals[0], &vals[1]),
            _ => sprig::unset(dict.clone(), &vals[0]),
        };
        *var = result.as_ref().map_or(dict, Val::clone);
        result.map_err(|e| CallError::Failed(format!("error calling {}: {e}", f.name())))
    }
}

fn literal(l: &Lit) -> Val<'_> {
    match l {
        Lit::Str(s) => Val::Str(s),
        Lit::Int(i) => Val::Int(*i),
        Lit::Float(f) => Val::Float(*f),
        Lit::Bool(b) => Val::Bool(*b),
    }
}

/// Follows `.a.b` from `v` as Go's `text/template` does with its default `missingkey`
/// option (map data, `map[string]any`):
///
/// | step                          | Go                     | here     |
/// |-------------------------------|------------------------|----------|
/// | key absent                    | invalid value, no error; the rest of the chain too | `Nil` |
/// | key holds `null`, chain ends   | `<no value>` once piped | `Nil`    |
/// | key holds `null`, chain goes on | `nil pointer evaluating interface {}.x` | error |
/// | field of a string, number …    | `can't evaluate field x in type interface {}` | error |
/// | chain starts at no value (`$x.y` with `$x` nil) | invalid, no error | `Nil` |
///
/// So `{{ or .metadata.labels.team "none" }}` prints `none` on an unlabelled object.
/// (Recorded against Go 1.26's `text/template`; see the tests.)
fn walk<'a>(mut v: Val<'a>, chain: &[Box<str>]) -> FnResult<'a> {
    for (i, name) in chain.iter().enumerate() {
        v = match v.entry(name) {
            Some(Some(next)) => next,
            Some(None) => return Ok(Val::Nil),
            None if v.is_nil() && i == 0 => return Ok(Val::Nil),
            None if v.is_nil() => return Err(format!("nil pointer evaluating interface {{}}.{name}")),
            // A value read from map data is an `interface {}` to Go; a variable's or
            // dot's value has its own type.
            None if i > 0 => return Err(format!("can't evaluate field {name} in type interface {{}}")),
            None => return Err(format!("can't evaluate field {name} in type {}", v.type_name())),
        };
    }
    Ok(v)
}

/// The (key, element) pairs of a computed list or map, maps in key order.
fn owned_items<'a>(v: &Value) -> Vec<(Val<'a>, Val<'a>)> {
    match View::of(v) {
        View::List(l) => l
            .iter()
            .enumerate()
            .map(|(i, e)| (Val::Int(i as i64), Val::from_value(e.clone())))
            .collect(),
        View::Map(m) => sorted_entries(m)
            .map(|(k, e)| (Val::text(k.as_str()), Val::from_value(e.clone())))
            .collect(),
        _ => Vec::new(),
    }
}
