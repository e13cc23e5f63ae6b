//! The function table: every function a template may call, resolved at parse time.
//!
//! Names map to a [`Func`] once, while parsing; rendering dispatches on the enum with one
//! `match`, never by name. Arity is checked at call time (Go does the same), so a wrong
//! number of arguments is a render error.

use super::{
    builtin, kwok, printf, sprig, sprig_date as date,
    sprig_date::OnError,
    sprig_encoding::{self as encoding, Base},
    sprig_random::{self as random, Charset},
    sprig_regex::{self as regex, OnBadPattern},
    sprig_semver, sprig_seq,
    value::{CallError, CallResult, FnResult, Val},
};
use crate::host::Host;

const ANY: usize = usize::MAX;

macro_rules! funcs {
    ($($variant:ident = $name:literal ($min:expr, $max:expr);)*) => {
        /// A template function.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Func {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Func {
            /// The function called `name`.
            pub fn lookup(name: &str) -> Option<Func> {
                match name {
                    $($name => Some(Func::$variant),)*
                    _ => None,
                }
            }

            /// The template name of this function.
            pub fn name(self) -> &'static str {
                match self {
                    $(Func::$variant => $name,)*
                }
            }

            /// The accepted number of arguments, inclusive.
            fn arity(self) -> (usize, usize) {
                match self {
                    $(Func::$variant => ($min, $max),)*
                }
            }
        }
    };
}

funcs! {
    // Go text/template builtins.
    And = "and" (1, ANY);
    Or = "or" (1, ANY);
    Not = "not" (1, 1);
    Eq = "eq" (2, ANY);
    Ne = "ne" (2, 2);
    Lt = "lt" (2, 2);
    Le = "le" (2, 2);
    Gt = "gt" (2, 2);
    Ge = "ge" (2, 2);
    Len = "len" (1, 1);
    Index = "index" (1, ANY);
    Slice = "slice" (1, 4);
    Print = "print" (0, ANY);
    Printf = "printf" (1, ANY);
    Println = "println" (0, ANY);
    Html = "html" (0, ANY);
    Js = "js" (0, ANY);
    Urlquery = "urlquery" (0, ANY);
    // Sprig: defaults and flow.
    Default = "default" (1, ANY);
    Empty = "empty" (1, 1);
    Coalesce = "coalesce" (0, ANY);
    Ternary = "ternary" (3, 3);
    // Sprig: strings.
    Quote = "quote" (0, ANY);
    Squote = "squote" (0, ANY);
    ToString = "toString" (1, 1);
    ToJson = "toJson" (1, 1);
    FromJson = "fromJson" (1, 1);
    Upper = "upper" (1, 1);
    Lower = "lower" (1, 1);
    Trim = "trim" (1, 1);
    TrimAll = "trimAll" (2, 2);
    TrimPrefix = "trimPrefix" (2, 2);
    TrimSuffix = "trimSuffix" (2, 2);
    HasPrefix = "hasPrefix" (2, 2);
    HasSuffix = "hasSuffix" (2, 2);
    Contains = "contains" (2, 2);
    Replace = "replace" (3, 3);
    Repeat = "repeat" (2, 2);
    Split = "split" (2, 2);
    SplitList = "splitList" (2, 2);
    Join = "join" (2, 2);
    Indent = "indent" (2, 2);
    Nindent = "nindent" (2, 2);
    // Sprig: math.
    Add = "add" (0, ANY);
    Add1 = "add1" (1, 1);
    Sub = "sub" (2, 2);
    Mul = "mul" (1, ANY);
    Div = "div" (2, 2);
    Mod = "mod" (2, 2);
    Max = "max" (1, ANY);
    Min = "min" (1, ANY);
    Addf = "addf" (0, ANY);
    Subf = "subf" (1, ANY);
    Mulf = "mulf" (1, ANY);
    Divf = "divf" (1, ANY);
    Int = "int" (1, 1);
    Int64 = "int64" (1, 1);
    Float64 = "float64" (1, 1);
    Atoi = "atoi" (1, 1);
    // Sprig: lists and dicts.
    List = "list" (0, ANY);
    Dict = "dict" (0, ANY);
    HasKey = "hasKey" (2, 2);
    Get = "get" (2, 2);
    Set = "set" (3, 3);
    Unset = "unset" (2, 2);
    Keys = "keys" (0, ANY);
    Append = "append" (2, 2);
    Prepend = "prepend" (2, 2);
    First = "first" (1, 1);
    Last = "last" (1, 1);
    Rest = "rest" (1, 1);
    Initial = "initial" (1, 1);
    Has = "has" (2, 2);
    // Sprig: regular expressions.
    RegexMatch = "regexMatch" (2, 2);
    MustRegexMatch = "mustRegexMatch" (2, 2);
    RegexFind = "regexFind" (2, 2);
    MustRegexFind = "mustRegexFind" (2, 2);
    RegexFindAll = "regexFindAll" (3, 3);
    MustRegexFindAll = "mustRegexFindAll" (3, 3);
    RegexReplaceAll = "regexReplaceAll" (3, 3);
    MustRegexReplaceAll = "mustRegexReplaceAll" (3, 3);
    RegexReplaceAllLiteral = "regexReplaceAllLiteral" (3, 3);
    MustRegexReplaceAllLiteral = "mustRegexReplaceAllLiteral" (3, 3);
    RegexSplit = "regexSplit" (3, 3);
    MustRegexSplit = "mustRegexSplit" (3, 3);
    RegexQuoteMeta = "regexQuoteMeta" (1, 1);
    // Sprig: encodings, random values, versions and sequences.
    B64enc = "b64enc" (1, 1);
    B64dec = "b64dec" (1, 1);
    B32enc = "b32enc" (1, 1);
    B32dec = "b32dec" (1, 1);
    Uuidv4 = "uuidv4" (0, 0);
    RandAlphaNum = "randAlphaNum" (1, 1);
    RandAlpha = "randAlpha" (1, 1);
    RandNumeric = "randNumeric" (1, 1);
    RandAscii = "randAscii" (1, 1);
    RandInt = "randInt" (2, 2);
    Semver = "semver" (1, 1);
    SemverCompare = "semverCompare" (2, 2);
    Until = "until" (1, 1);
    UntilStep = "untilStep" (3, 3);
    Seq = "seq" (0, ANY);
    // Sprig: dates.
    SprigNow = "now" (0, 0);
    Date = "date" (2, 2);
    DateInZone = "dateInZone" (3, 3);
    DateInZoneSnake = "date_in_zone" (3, 3);
    HtmlDate = "htmlDate" (1, 1);
    HtmlDateInZone = "htmlDateInZone" (2, 2);
    ToDate = "toDate" (2, 2);
    MustToDate = "mustToDate" (2, 2);
    UnixEpoch = "unixEpoch" (1, 1);
    DateModify = "dateModify" (2, 2);
    DateModifySnake = "date_modify" (2, 2);
    MustDateModify = "mustDateModify" (2, 2);
    MustDateModifySnake = "must_date_modify" (2, 2);
    Duration = "duration" (1, 1);
    DurationRound = "durationRound" (1, 1);
    Ago = "ago" (1, 1);
    // KWOK.
    KQuote = "Quote" (1, 1);
    Now = "Now" (0, 0);
    StartTime = "StartTime" (0, 0);
    Yaml = "YAML" (1, 2);
    Version = "Version" (0, 0);
    NodeConditions = "NodeConditions" (0, 0);
    NodeIp = "NodeIP" (0, 0);
    NodeName = "NodeName" (0, 0);
    NodePort = "NodePort" (0, 0);
    PodIp = "PodIP" (0, 0);
    NodeIpWith = "NodeIPWith" (1, 1);
    NodeIpsWith = "NodeIPsWith" (1, 1);
    PodIpWith = "PodIPWith" (5, 5);
    PodIpsWith = "PodIPsWith" (5, 5);
    // kwokctl scale templates only (see `Func::scale_only`).
    ScaleName = "Name" (0, 0);
    ScaleNamespace = "Namespace" (0, 0);
    ScaleIndex = "Index" (0, 0);
    AddCidr = "AddCIDR" (2, 2);
    AddIp = "AddIP" (2, 2);
}

impl Func {
    /// Whether the function exists only in `kwokctl scale` templates (upstream's
    /// KwokctlResource renderer), so a Stage template naming it fails to parse as in KWOK.
    pub fn scale_only(self) -> bool {
        matches!(
            self,
            Func::ScaleName | Func::ScaleNamespace | Func::ScaleIndex | Func::AddCidr | Func::AddIp
        )
    }

    /// Calls the function on evaluated arguments.
    pub fn call<'a>(self, args: &[Val<'a>], host: &mut dyn Host) -> CallResult<'a> {
        let (min, max) = self.arity();
        if args.len() < min || args.len() > max {
            return Err(CallError::Failed(self.arity_error(args.len())));
        }
        // Only the IP functions allocate (and print stand-ins with `placeholders`), so
        // only they ask the host which: every other call skips that virtual call.
        let result = match self {
            Func::PodIp if !host.placeholders() => host.pod_ip().map(Val::text).map_err(CallError::from),
            Func::PodIpWith | Func::PodIpsWith if !host.placeholders() => {
                kwok::pod_ip_with(args, host, self == Func::PodIpsWith)
            }
            _ => self.dispatch(args, host).map_err(CallError::Failed),
        };
        result.map_err(|e| match e {
            CallError::Failed(e) => CallError::Failed(format!("error calling {}: {e}", self.name())),
            CallError::PoolExhausted(mut e) => {
                e.func = self.name();
                CallError::PoolExhausted(e)
            }
        })
    }

    fn arity_error(self, got: usize) -> String {
        let (min, max) = self.arity();
        match (min, max) {
            (min, ANY) => format!(
                "wrong number of args for {}: want at least {min} got {got}",
                self.name()
            ),
            (min, max) if min == max => {
                format!("wrong number of args for {}: want {min} got {got}", self.name())
            }
            (min, max) => format!(
                "wrong number of args for {}: want {min} to {max} got {got}",
                self.name()
            ),
        }
    }

    fn dispatch<'a>(self, a: &[Val<'a>], host: &mut dyn Host) -> FnResult<'a> {
        use Func as F;
        match self {
            F::And => Ok(a.iter().find(|v| !v.truth()).unwrap_or(&a[a.len() - 1]).clone()),
            F::Or => Ok(a.iter().find(|v| v.truth()).unwrap_or(&a[a.len() - 1]).clone()),
            F::Not => Ok(Val::Bool(!a[0].truth())),
            F::Eq => builtin::eq(&a[0], &a[1..]).map(Val::Bool),
            F::Ne => builtin::eq(&a[0], &a[1..]).map(|b| Val::Bool(!b)),
            F::Lt => builtin::less(&a[0], &a[1]).map(Val::Bool),
            F::Le => builtin::less(&a[1], &a[0]).map(|b| Val::Bool(!b)),
            F::Gt => builtin::less(&a[1], &a[0]).map(Val::Bool),
            F::Ge => builtin::less(&a[0], &a[1]).map(|b| Val::Bool(!b)),
            F::Len => builtin::len(&a[0]),
            F::Index => builtin::index(&a[0], &a[1..]),
            F::Slice => builtin::slice(&a[0], &a[1..]),
            F::Print => Ok(Val::text(builtin::sprint(a))),
            F::Printf => printf::printf(&a[0], &a[1..]).map(Val::text),
            F::Println => Ok(Val::text(builtin::sprintln(a))),
            F::Html => Ok(Val::text(builtin::html(&builtin::eval_args(a)))),
            F::Js => Ok(Val::text(builtin::js(&builtin::eval_args(a)))),
            F::Urlquery => Ok(Val::text(builtin::urlquery(&builtin::eval_args(a)))),
            _ => self.dispatch_sprig(a, host),
        }
    }

    fn dispatch_sprig<'a>(self, a: &[Val<'a>], host: &mut dyn Host) -> FnResult<'a> {
        use Func as F;
        match self {
            F::Default => Ok(sprig::default(a)),
            F::Empty => Ok(Val::Bool(!a[0].truth())),
            F::Coalesce => Ok(a.iter().find(|v| v.truth()).cloned().unwrap_or_default()),
            F::Ternary => sprig::ternary(a),
            F::Quote => Ok(Val::text(sprig::quote(a))),
            F::Squote => Ok(Val::text(sprig::squote(a))),
            F::ToString => Ok(sprig::to_string(&a[0])),
            F::ToJson => Ok(Val::text(sprig::to_json(&a[0]))),
            F::FromJson => sprig::from_json(&a[0]),
            F::Upper => sprig::map_str(&a[0], str::to_uppercase),
            F::Lower => sprig::map_str(&a[0], str::to_lowercase),
            F::Trim => sprig::map_str(&a[0], |s| s.trim().to_owned()),
            F::TrimAll => sprig::trim_all(&a[0], &a[1]),
            F::TrimPrefix => sprig::trim_prefix(&a[0], &a[1]),
            F::TrimSuffix => sprig::trim_suffix(&a[0], &a[1]),
            F::HasPrefix => sprig::test_str(&a[1], &a[0], |s, x| s.starts_with(x)),
            F::HasSuffix => sprig::test_str(&a[1], &a[0], |s, x| s.ends_with(x)),
            F::Contains => sprig::test_str(&a[1], &a[0], |s, x| s.contains(x)),
            F::Replace => sprig::replace(&a[0], &a[1], &a[2]),
            F::Repeat => sprig::repeat(&a[0], &a[1]),
            F::Split => sprig::split(&a[0], &a[1], true),
            F::SplitList => sprig::split(&a[0], &a[1], false),
            F::Join => sprig::join(&a[0], &a[1]),
            F::Indent => sprig::indent(&a[0], &a[1], false),
            F::Nindent => sprig::indent(&a[0], &a[1], true),
            _ => self.dispatch_math(a, host),
        }
    }

    fn dispatch_math<'a>(self, a: &[Val<'a>], host: &mut dyn Host) -> FnResult<'a> {
        use Func as F;
        match self {
            F::Add => Ok(Val::Int(
                a.iter().map(sprig::to_i64).fold(0i64, i64::wrapping_add),
            )),
            F::Add1 => Ok(Val::Int(sprig::to_i64(&a[0]).wrapping_add(1))),
            F::Sub => Ok(Val::Int(sprig::to_i64(&a[0]).wrapping_sub(sprig::to_i64(&a[1])))),
            F::Mul => Ok(Val::Int(
                a.iter().map(sprig::to_i64).fold(1i64, i64::wrapping_mul),
            )),
            F::Div => sprig::div(&a[0], &a[1]),
            F::Mod => sprig::rem(&a[0], &a[1]),
            F::Max => Ok(Val::Int(a.iter().map(sprig::to_i64).max().unwrap_or(0))),
            F::Min => Ok(Val::Int(a.iter().map(sprig::to_i64).min().unwrap_or(0))),
            F::Addf => Ok(Val::Float(a.iter().map(sprig::to_f64).sum())),
            F::Subf => Ok(Val::Float(
                a[1..]
                    .iter()
                    .map(sprig::to_f64)
                    .fold(sprig::to_f64(&a[0]), |x, y| x - y),
            )),
            F::Mulf => Ok(Val::Float(a.iter().map(sprig::to_f64).product())),
            F::Divf => Ok(Val::Float(
                a[1..]
                    .iter()
                    .map(sprig::to_f64)
                    .fold(sprig::to_f64(&a[0]), |x, y| x / y),
            )),
            F::Int | F::Int64 => Ok(Val::Int(sprig::to_i64(&a[0]))),
            F::Float64 => Ok(Val::Float(sprig::to_f64(&a[0]))),
            F::Atoi => sprig::atoi(&a[0]),
            _ => self.dispatch_collections(a, host),
        }
    }

    fn dispatch_collections<'a>(self, a: &[Val<'a>], host: &mut dyn Host) -> FnResult<'a> {
        use Func as F;
        match self {
            F::List => Ok(sprig::list(a)),
            F::Dict => Ok(sprig::dict(a)),
            F::HasKey => sprig::has_key(&a[0], &a[1]),
            F::Get => sprig::get(&a[0], &a[1]),
            F::Set => sprig::set(a[0].clone(), &a[1], &a[2]),
            F::Unset => sprig::unset(a[0].clone(), &a[1]),
            F::Keys => sprig::keys(a),
            F::Append => sprig::push(&a[0], &a[1], false),
            F::Prepend => sprig::push(&a[0], &a[1], true),
            F::First => sprig::pick(&a[0], sprig::Pick::First),
            F::Last => sprig::pick(&a[0], sprig::Pick::Last),
            F::Rest => sprig::pick(&a[0], sprig::Pick::Rest),
            F::Initial => sprig::pick(&a[0], sprig::Pick::Initial),
            F::Has => sprig::has(&a[0], &a[1]),
            _ => self.dispatch_regex(a, host),
        }
    }

    fn dispatch_regex<'a>(self, a: &[Val<'a>], host: &mut dyn Host) -> FnResult<'a> {
        use {Func as F, OnBadPattern::*};
        match self {
            F::RegexMatch => regex::is_match(&a[0], &a[1], Panic),
            F::MustRegexMatch => regex::is_match(&a[0], &a[1], Error),
            F::RegexFind => regex::find(&a[0], &a[1], Panic),
            F::MustRegexFind => regex::find(&a[0], &a[1], Error),
            F::RegexFindAll => regex::find_all(a, Panic),
            F::MustRegexFindAll => regex::find_all(a, Error),
            F::RegexReplaceAll => regex::replace_all(a, false, Panic),
            F::MustRegexReplaceAll => regex::replace_all(a, false, Error),
            F::RegexReplaceAllLiteral => regex::replace_all(a, true, Panic),
            F::MustRegexReplaceAllLiteral => regex::replace_all(a, true, Error),
            F::RegexSplit => regex::split(a, Panic),
            F::MustRegexSplit => regex::split(a, Error),
            F::RegexQuoteMeta => regex::quote_meta(&a[0]),
            _ => self.dispatch_values(a, host),
        }
    }

    fn dispatch_values<'a>(self, a: &[Val<'a>], host: &mut dyn Host) -> FnResult<'a> {
        use Func as F;
        match self {
            F::B64enc => encoding::encode(&a[0], Base::B64),
            F::B64dec => encoding::decode(&a[0], Base::B64),
            F::B32enc => encoding::encode(&a[0], Base::B32),
            F::B32dec => encoding::decode(&a[0], Base::B32),
            F::Uuidv4 => random::uuid_v4(host),
            F::RandAlphaNum => random::string(&a[0], Charset::AlphaNum, host),
            F::RandAlpha => random::string(&a[0], Charset::Alpha, host),
            F::RandNumeric => random::string(&a[0], Charset::Numeric, host),
            F::RandAscii => random::string(&a[0], Charset::Ascii, host),
            F::RandInt => random::int(&a[0], &a[1], host),
            F::Semver => sprig_semver::semver(&a[0]),
            F::SemverCompare => sprig_semver::compare(&a[0], &a[1]),
            F::Until => sprig_seq::until(&a[0]),
            F::UntilStep => sprig_seq::until_step(a),
            F::Seq => sprig_seq::seq(a),
            _ => self.dispatch_date(a, host),
        }
    }

    fn dispatch_date<'a>(self, a: &[Val<'a>], host: &mut dyn Host) -> FnResult<'a> {
        use {Func as F, OnError::*};
        match self {
            F::SprigNow => date::now(host),
            F::Date => date::date(&a[0], &a[1], host),
            F::DateInZone | F::DateInZoneSnake => date::date_in_named_zone(a, host),
            F::HtmlDate => date::html_date(&a[0], None, host),
            F::HtmlDateInZone => date::html_date(&a[0], Some(&a[1]), host),
            F::ToDate => date::to_date(&a[0], &a[1], Fallback),
            F::MustToDate => date::to_date(&a[0], &a[1], Fail),
            F::UnixEpoch => date::unix_epoch(&a[0]),
            F::DateModify | F::DateModifySnake => date::date_modify(&a[0], &a[1], Fallback),
            F::MustDateModify | F::MustDateModifySnake => date::date_modify(&a[0], &a[1], Fail),
            F::Duration => date::duration(&a[0]),
            F::DurationRound => date::duration_round(&a[0], host),
            F::Ago => date::ago(&a[0], host),
            _ => self.dispatch_kwok(a, host),
        }
    }

    fn dispatch_kwok<'a>(self, a: &[Val<'a>], host: &mut dyn Host) -> FnResult<'a> {
        use Func as F;
        match self {
            F::Now
            | F::Version
            | F::NodeIp
            | F::NodeName
            | F::NodePort
            | F::PodIp
            | F::NodeIpWith
            | F::PodIpWith
                if host.placeholders() =>
            {
                Ok(Val::text(kwok::placeholder(self.name(), a, None)))
            }
            F::NodeIpsWith | F::PodIpsWith if host.placeholders() => Ok(kwok::strings(
                (0..2)
                    .map(|i| kwok::placeholder(self.name(), a, Some(i)))
                    .collect(),
            )),
            F::KQuote => Ok(Val::text(kwok::quote(&a[0]))),
            F::Now => Ok(Val::text(kwok::rfc3339_nano(host.now()))),
            F::StartTime => Ok(Val::text(kwok::rfc3339_nano(host.start_time()))),
            F::Yaml => kwok::yaml(&a[0], a.get(1)),
            F::Version => Ok(Val::text(host.version())),
            F::NodeConditions => Ok(Val::Data(kwok::node_conditions())),
            F::NodeIp => Ok(Val::text(host.node_ip())),
            F::NodeName => Ok(Val::text(host.node_name())),
            F::NodePort => Ok(Val::Int(i64::from(host.node_port()))),
            F::NodeIpWith => Ok(Val::text(host.node_ip_with(kwok::string_arg(&a[0])?))),
            F::NodeIpsWith => Ok(kwok::strings(host.node_ips_with(kwok::string_arg(&a[0])?))),
            F::ScaleName => Ok(Val::text(kwok::scale_target(host)?.name.as_str())),
            F::ScaleNamespace => Ok(Val::text(kwok::scale_target(host)?.namespace.as_str())),
            F::ScaleIndex => Ok(Val::Int(kwok::scale_target(host)?.index)),
            F::AddCidr => kwok::add_cidr(&a[0], &a[1]).map(Val::text),
            F::AddIp => kwok::add_ip(&a[0], &a[1]).map(Val::text),
            _ => Err(format!("function {} is not implemented", self.name())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_should_round_trip_every_name() {
        for name in [
            "and",
            "printf",
            "default",
            "toJson",
            "Quote",
            "PodIPsWith",
            "NodeConditions",
        ] {
            assert_eq!(Func::lookup(name).map(Func::name), Some(name));
        }
        assert_eq!(Func::lookup("Foo"), None);
    }

    #[test]
    fn a_wrong_argument_count_should_name_the_function() {
        let mut host = crate::host::FixedHost::new(jiff::Timestamp::UNIX_EPOCH);
        let e = Func::Not.call(&[], &mut host).unwrap_err();
        assert_eq!(
            e,
            CallError::Failed("wrong number of args for not: want 1 got 0".into())
        );
    }
}
