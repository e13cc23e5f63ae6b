//! KWOK's CEL environment for usage and metric expressions: the variables `node`,
//! `pod` and `container`, and the functions of upstream's metrics environment.
//!
//! | function | gives |
//! |---|---|
//! | `Now()` (also `now()`) | the scrape's `now`, a timestamp |
//! | `Rand()` | a random double in `[0, 1)` |
//! | `UnixSecond(t)` | seconds since the Unix epoch of a timestamp (or RFC 3339 text) |
//! | `SinceSecond(o)`, `o.SinceSecond()` | seconds from `o`'s `creationTimestamp` to `now` |
//! | `Quantity("250m")` | a quantity as a double |
//! | `pod.Usage(r)`, `pod.Usage(r, c)`, `node.Usage(r)` | current usage of resource `r` (sum over containers) |
//! | `pod.CumulativeUsage(r[, c])`, `node.CumulativeUsage(r)` | usage integrated over time |
//! | `StartedContainersTotal(node)` (or a node name; also `startedContainersTotal`) | containers started on the node |

use std::sync::{Arc, LazyLock};

use cel::common::traits::{Container, Indexer, Iterable, Sizer};
use cel::common::types::{CelDouble, CelMap, CelString, CelTimestamp, Type};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::context::VariableResolver;
use cel::functions::FunctionContext;
use cel::{Context, ExecutionError, Program, Value as CelValue};
use serde_json::Value;

use super::reads::Reads;
use super::table::UsageTable;

/// Hidden variables (not CEL identifiers, so no expression can name them) through which
/// the functions reach the scrape's `now` and usage table.
const NOW: &str = "@now";
const TABLE: &str = "@usage";

/// A function as the interpreter calls it: given the call's target, arguments and
/// context (cel's own `Function` type, which it does not export by name).
type Native = Box<
    dyn for<'c, 'k> Fn(&mut FunctionContext<'c, 'k>) -> Result<CowVal<'c, 'k>, ExecutionError> + Send + Sync,
>;

/// A function's name and constructor.
type Named = (&'static str, fn() -> Native);

/// The root context every evaluation opens a scope of: the functions only; the
/// variables come from a [`Scope`].
static ROOT: LazyLock<Context<'static, 'static>> = LazyLock::new(|| {
    let mut ctx = Context::default();
    let functions: [Named; 10] = [
        ("Now", || Box::new(now)),
        ("now", || Box::new(now)),
        ("Rand", || Box::new(random)),
        ("UnixSecond", || Box::new(unix_second)),
        ("SinceSecond", || Box::new(since_second)),
        ("Quantity", || Box::new(quantity)),
        ("Usage", || Box::new(usage)),
        ("CumulativeUsage", || Box::new(cumulative_usage)),
        ("StartedContainersTotal", || Box::new(started_containers_total)),
        ("startedContainersTotal", || Box::new(started_containers_total)),
    ];
    for (name, function) in functions {
        ctx.add_function(name, function())
            .unwrap_or_else(|e| panic!("kwok CEL function {name}: {e:?}"));
    }
    ctx
});

/// A CEL expression compiled once at load.
#[derive(Clone)]
pub(crate) struct Expr {
    program: Arc<Program>,
    /// Set when the expression is a plain field path such as `pod.metadata.name`:
    /// the variable (index into [`Scope::json`]) and the fields. Most label
    /// expressions are; reading them off the JSON skips the interpreter.
    path: Option<(usize, Vec<String>)>,
    /// The fields of `node`, `pod` and `container` it reads.
    reads: Arc<Reads>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expr").finish_non_exhaustive()
    }
}

impl Expr {
    /// Parses `source`; the error is the parser's message on one line.
    pub(crate) fn compile(source: &str) -> Result<Self, String> {
        if source.trim().is_empty() {
            return Err("the expression is empty".into());
        }
        let program =
            Program::compile(source).map_err(|e| kwok_engine::selector::cel_one_line(&e.to_string()))?;
        Ok(Self {
            reads: Arc::new(Reads::of(program.expression())),
            program: Arc::new(program),
            path: field_path(source),
        })
    }

    /// The fields of `node`, `pod` and `container` the expression reads.
    pub(crate) fn reads(&self) -> &Reads {
        &self.reads
    }

    /// The expression's value in `scope`.
    pub(crate) fn eval(&self, scope: &Scope<'_>) -> Result<CelValue, String> {
        let root: &Context<'_, '_> = &ROOT;
        let mut ctx = root.new_inner_scope();
        ctx.set_variable_resolver(scope);
        self.program
            .execute(&ctx)
            .map_err(|e| kwok_engine::selector::cel_one_line(&e.to_string()))
    }

    /// The JSON a plain field path reads, when it reads one.
    fn shortcut<'s>(&self, scope: &Scope<'s>) -> Option<&'s Value> {
        let (var, fields) = self.path.as_ref()?;
        fields.iter().try_fold(scope.json[*var]?, |v, f| v.get(f))
    }

    /// The value as a number, converted as upstream's `AsFloat64` does.
    pub(crate) fn eval_f64(&self, scope: &Scope<'_>) -> Result<f64, String> {
        if let Some(n) = self.shortcut(scope).and_then(Value::as_f64) {
            return Ok(n);
        }
        match self.eval(scope)? {
            CelValue::Float(f) => Ok(f),
            CelValue::Int(i) => Ok(i as f64),
            CelValue::UInt(u) => Ok(u as f64),
            CelValue::Bool(b) => Ok(if b { 1.0 } else { 0.0 }),
            // Go's float64(time.Duration): nanoseconds.
            CelValue::Duration(d) => Ok(d.num_nanoseconds().unwrap_or(i64::MAX) as f64),
            other => Err(format!("want a number, got {}", other.type_of())),
        }
    }

    /// The value as text; anything but a string is an error, as upstream's `AsString`.
    pub(crate) fn eval_string(&self, scope: &Scope<'_>) -> Result<String, String> {
        // Strings read the same off the JSON as off the typed object, except times,
        // which the typed object holds as timestamps (and CEL then refuses as text).
        if let Some(Value::String(s)) = self.shortcut(scope)
            && !self
                .path
                .as_ref()
                .is_some_and(|(_, f)| f.last().is_some_and(|l| is_time(l)))
        {
            return Ok(s.clone());
        }
        match self.eval(scope)? {
            CelValue::String(s) => Ok(Arc::unwrap_or_clone(s)),
            other => Err(format!("want a string, got {}", other.type_of())),
        }
    }
}

/// `node.a.b`, `pod.a`, `container.a` as (variable index, fields); else None.
fn field_path(source: &str) -> Option<(usize, Vec<String>)> {
    let mut parts = source.trim().split('.');
    let var = match parts.next()? {
        "node" => 0,
        "pod" => 1,
        "container" => 2,
        _ => return None,
    };
    let ident = |p: &str| {
        p.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let fields: Vec<String> = parts.map(str::to_owned).collect();
    (!fields.is_empty() && fields.iter().all(|f| ident(f))).then_some((var, fields))
}

/// Fields the typed objects hold as timestamps (see `cel_typed_value`).
fn is_time(field: &str) -> bool {
    matches!(
        field,
        "creationTimestamp"
            | "deletionTimestamp"
            | "lastTransitionTime"
            | "lastProbeTime"
            | "lastHeartbeatTime"
            | "startTime"
            | "startedAt"
            | "finishedAt"
            | "time"
    )
}

// ===== variables =====

/// What an object bound to `node` or `pod` is, for the `Usage` functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Node,
    /// The pod's index in the scrape's pod list.
    Pod(usize),
}

/// A Node or Pod as a CEL value: its fields (a map, converted once per scrape and
/// shared), plus which object it is, so `pod.Usage(..)` knows whose usage to give.
#[derive(Debug, Clone)]
pub(crate) struct Object {
    pub(crate) slot: Slot,
    fields: Arc<dyn Val>,
}

impl Object {
    /// `fields` must be a CEL map (what `cel_typed_value` gives for an object).
    pub(crate) fn new(slot: Slot, fields: Arc<dyn Val>) -> Self {
        Self { slot, fields }
    }
}

impl Val for Object {
    fn get_type(&self) -> &Type {
        self.fields.get_type()
    }
    fn cel_type() -> &'static Type {
        <CelMap<'static> as Val>::cel_type()
    }
    fn as_container(&self) -> Option<&dyn Container> {
        self.fields.as_container()
    }
    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        self.fields.as_indexer()
    }
    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        self.fields.as_iterable()
    }
    fn as_sizer(&self) -> Option<&dyn Sizer> {
        self.fields.as_sizer()
    }
    fn equals(&self, other: &dyn Val) -> bool {
        match other.downcast_ref::<Object>() {
            Some(o) => self.fields.equals(o.fields.as_ref()),
            None => self.fields.equals(other),
        }
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(self.clone())
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

impl StaticVal for Object {}

/// The variables of one evaluation, borrowed from the scrape's converted objects.
pub(crate) struct Scope<'a> {
    pub(crate) now: &'a CelTimestamp,
    pub(crate) node: &'a Object,
    pub(crate) pod: Option<&'a Object>,
    pub(crate) container: Option<&'a dyn Val>,
    /// Absent while the table itself is being computed (usage expressions).
    pub(crate) table: Option<&'a UsageTable>,
    /// `node`, `pod` and `container` as JSON, for plain field paths.
    pub(crate) json: [Option<&'a Value>; 3],
}

impl VariableResolver for Scope<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let val: &'b dyn Val = match variable {
            "node" => self.node,
            "pod" => self.pod?,
            "container" => self.container?,
            NOW => self.now,
            TABLE => self.table?,
            _ => return None,
        };
        Some(CowVal::Borrowed(val))
    }
}

// ===== functions =====

type Answer<'c, 'k> = Result<CowVal<'c, 'k>, ExecutionError>;

fn double<'c, 'k>(value: f64) -> Answer<'c, 'k> {
    Ok(CowVal::owned(CelDouble::from(value)))
}

/// The target of a method call, or the first argument of a function call; with the
/// arguments after it.
fn target_and_args<'a, 'c, 'k>(
    ftx: &'a FunctionContext<'c, 'k>,
) -> Result<(&'a dyn Val, &'a [CowVal<'c, 'k>]), ExecutionError> {
    match &ftx.this {
        Some(this) => Ok((this.as_ref(), &ftx.args[..])),
        None => match ftx.args.split_first() {
            Some((first, rest)) => Ok((first.as_ref(), rest)),
            None => Err(ExecutionError::missing_argument_or_target()),
        },
    }
}

fn string_arg<'a>(ftx: &FunctionContext<'_, '_>, arg: &'a dyn Val) -> Result<&'a str, ExecutionError> {
    arg.downcast_ref::<CelString>()
        .map(CelString::inner)
        .ok_or_else(|| ftx.error(format!("want a string, got {:?}", arg.get_type())))
}

fn now_of(ftx: &FunctionContext<'_, '_>) -> Result<chrono::DateTime<chrono::FixedOffset>, ExecutionError> {
    let now = ftx
        .ptx
        .get_variable(NOW)
        .ok_or_else(|| ftx.error("no clock in scope"))?;
    now.downcast_ref::<CelTimestamp>()
        .map(|t| *t.inner())
        .ok_or_else(|| ftx.error("the clock is not a timestamp"))
}

fn now<'c, 'k>(ftx: &mut FunctionContext<'c, 'k>) -> Answer<'c, 'k> {
    Ok(CowVal::owned(CelTimestamp::from(now_of(ftx)?)))
}

fn random<'c, 'k>(_: &mut FunctionContext<'c, 'k>) -> Answer<'c, 'k> {
    double(rand::random::<f64>())
}

fn seconds(t: &chrono::DateTime<chrono::FixedOffset>) -> f64 {
    t.timestamp_nanos_opt().unwrap_or_default() as f64 / 1e9
}

/// A timestamp, or RFC 3339 text, in seconds since the epoch.
fn seconds_of(ftx: &FunctionContext<'_, '_>, t: &dyn Val) -> Result<f64, ExecutionError> {
    if let Some(t) = t.downcast_ref::<CelTimestamp>() {
        return Ok(seconds(t.inner()));
    }
    let text = string_arg(ftx, t)?;
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| seconds(&t))
        .map_err(|e| ftx.error(format!("{text:?}: {e}")))
}

fn unix_second<'c, 'k>(ftx: &mut FunctionContext<'c, 'k>) -> Answer<'c, 'k> {
    let (t, _) = target_and_args(ftx)?;
    double(seconds_of(ftx, t)?)
}

fn since_second<'c, 'k>(ftx: &mut FunctionContext<'c, 'k>) -> Answer<'c, 'k> {
    let (obj, _) = target_and_args(ftx)?;
    let missing = |_| ftx.error("the object has no creationTimestamp");
    let metadata = field(obj, "metadata").map_err(missing)?;
    let created = field(metadata.as_ref(), "creationTimestamp").map_err(missing)?;
    let created = seconds_of(ftx, created.as_ref())?;
    double(seconds(&now_of(ftx)?) - created)
}

fn field<'b>(obj: &'b dyn Val, name: &str) -> Result<CowVal<'b, 'b>, ExecutionError> {
    let indexer = obj
        .as_indexer()
        .ok_or_else(|| ExecutionError::no_such_key(name))?;
    indexer.get(&CelString::from(name))
}

fn quantity<'c, 'k>(ftx: &mut FunctionContext<'c, 'k>) -> Answer<'c, 'k> {
    let (text, _) = target_and_args(ftx)?;
    let text = string_arg(ftx, text)?;
    let value =
        kwok_engine::quantity::parse(text).ok_or_else(|| ftx.error(format!("{text:?} is not a quantity")))?;
    double(value)
}

/// Which figure of the usage table a function reads.
#[derive(Clone, Copy)]
pub(crate) enum Figure {
    Current,
    Cumulative,
}

fn usage<'c, 'k>(ftx: &mut FunctionContext<'c, 'k>) -> Answer<'c, 'k> {
    table_lookup(ftx, Figure::Current)
}

fn cumulative_usage<'c, 'k>(ftx: &mut FunctionContext<'c, 'k>) -> Answer<'c, 'k> {
    table_lookup(ftx, Figure::Cumulative)
}

fn table_of<'a>(ftx: &'a FunctionContext<'_, '_>) -> Result<CowVal<'a, 'a>, ExecutionError> {
    ftx.ptx
        .get_variable(TABLE)
        .ok_or_else(|| ftx.error("resource usage is not known here (a usage expression cannot use it)"))
}

/// `obj.Usage(resource[, container])`: upstream's overloads are a Pod with or without a
/// container name, and a Node without.
fn table_lookup<'c, 'k>(ftx: &FunctionContext<'c, 'k>, figure: Figure) -> Answer<'c, 'k> {
    let (obj, args) = target_and_args(ftx)?;
    let obj = obj
        .downcast_ref::<Object>()
        .ok_or_else(|| ftx.error("want `node` or `pod` as the target"))?;
    let resource = string_arg(
        ftx,
        args.first()
            .ok_or_else(|| ftx.error("want a resource name"))?
            .as_ref(),
    )?;
    let container = args.get(1).map(|c| string_arg(ftx, c.as_ref())).transpose()?;
    let table = table_of(ftx)?;
    let table = table
        .downcast_ref::<UsageTable>()
        .ok_or_else(|| ftx.error("the usage table has the wrong type"))?;
    match (obj.slot, container) {
        (Slot::Node, None) => double(table.node(resource, figure)),
        (Slot::Pod(i), container) => double(table.pod(i, resource, container, figure)),
        (Slot::Node, Some(_)) => Err(ftx.error("a node's usage takes no container name")),
    }
}

fn started_containers_total<'c, 'k>(ftx: &mut FunctionContext<'c, 'k>) -> Answer<'c, 'k> {
    let (target, _) = target_and_args(ftx)?;
    let table = table_of(ftx)?;
    let table = table
        .downcast_ref::<UsageTable>()
        .ok_or_else(|| ftx.error("the usage table has the wrong type"))?;
    // Upstream takes a Node or a node name; kwok only knows the scraped node's count.
    let this_node = match target.downcast_ref::<Object>() {
        Some(o) => o.slot == Slot::Node,
        None => string_arg(ftx, target)? == table.node_name(),
    };
    double(if this_node {
        table.started_containers()
    } else {
        0.0
    })
}
