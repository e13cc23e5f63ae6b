//! The compiled form of a template: nodes with resolved functions and variable slots.

use super::{funcs::Func, tokens::Text};

/// Index of a variable in the frame of one template body; `$` is always slot 0.
pub type Slot = usize;

/// A parsed template body with the number of variable slots it needs.
#[derive(Debug, Clone, Default)]
pub struct Body {
    /// The nodes.
    pub nodes: Vec<Node>,
    /// Variable slots used (at least 1 for `$`).
    pub slots: usize,
}

/// One node of a template body.
#[derive(Debug, Clone)]
pub enum Node {
    /// Literal text, with its YAML tokens.
    Text(Box<Text>),
    /// `{{ pipeline }}`: printed unless it declares or assigns variables.
    Action(Pipe),
    /// `if`/`else if`/`else` (`with` when `with` is set: the arm's value becomes dot).
    Cond(Box<Cond>),
    /// `range`.
    Range(Box<Range>),
    /// `template "name" pipeline`.
    Template {
        /// Index into the template's definitions.
        index: usize,
        /// The new dot (nil when absent).
        pipe: Option<Pipe>,
        /// 1-based line.
        line: usize,
    },
    /// `break`.
    Break,
    /// `continue`.
    Continue,
}

/// `if` or `with` with its `else if`/`else with` arms.
#[derive(Debug, Clone)]
pub struct Cond {
    /// `with` sets dot to the tested value.
    pub with: bool,
    /// Tested in order; the first true one runs.
    pub arms: Vec<(Pipe, Vec<Node>)>,
    /// Runs when no arm does.
    pub otherwise: Vec<Node>,
}

/// `range [$k, $v :=] pipeline`.
#[derive(Debug, Clone)]
pub struct Range {
    /// The iterated value (its declarations are handled by the range itself).
    pub pipe: Pipe,
    /// `$k` of `$k, $v :=`.
    pub key: Option<Slot>,
    /// `$v` (or the only variable).
    pub value: Option<Slot>,
    /// Runs per element with dot set to it.
    pub body: Vec<Node>,
    /// Runs when there are no elements.
    pub otherwise: Vec<Node>,
}

/// A pipeline: commands joined by `|`, optionally declaring or assigning variables.
#[derive(Debug, Clone)]
pub struct Pipe {
    /// Variables declared (`:=`) or assigned (`=`).
    pub decl: Vec<Slot>,
    /// The commands; each after the first receives the previous result as last argument.
    pub cmds: Vec<Cmd>,
    /// 1-based line.
    pub line: usize,
}

/// One command of a pipeline.
#[derive(Debug, Clone)]
pub enum Cmd {
    /// A function call with its arguments.
    Call(Func, Vec<Arg>),
    /// A single operand.
    Arg(Arg),
}

/// An operand.
#[derive(Debug, Clone)]
pub enum Arg {
    /// `.`.
    Dot,
    /// `nil`.
    Nil,
    /// A literal.
    Lit(Lit),
    /// `.a.b` on dot.
    Field(Box<[Box<str>]>),
    /// `$x.a.b`.
    Var(Slot, Box<[Box<str>]>),
    /// `(pipeline).a.b`.
    Pipe(Box<Pipe>, Box<[Box<str>]>),
    /// A function called without arguments.
    Call(Func),
}

/// A literal constant.
#[derive(Debug, Clone)]
pub enum Lit {
    /// A string.
    Str(Box<str>),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}
