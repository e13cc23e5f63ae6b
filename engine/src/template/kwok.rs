//! KWOK's own template functions: `Quote`, `Now`, `YAML`, `NodeConditions` and the IP helpers.

use std::{
    fmt::Write,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    rc::Rc,
    sync::LazyLock,
};

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{
    format::write_go_quote,
    json::{write_json, write_json_str},
    marshal::write_yaml,
    value::{CallResult, FnResult, Val, View},
};
use crate::host::{Host, ScaleTarget};

/// Writes KWOK's `Quote`: the JSON encoding of a string, or of anything else wrapped in a
/// JSON string (`5` → `"5"`, nil → `"null"`), so the result is always a YAML string scalar.
pub fn write_quote(v: &Val<'_>, out: &mut String) {
    match v.view() {
        View::Str(s) => write_json_str(s, out),
        _ => write_go_quote(&quoted_content(v), out),
    }
}

/// The string `Quote v` prints, as YAML reads it back: a string itself, anything else
/// its JSON text.
pub fn quoted_content(v: &Val<'_>) -> String {
    match v.view() {
        View::Str(s) => s.to_owned(),
        view => {
            let mut json = String::new();
            write_json(view, &mut json);
            json
        }
    }
}

/// `Quote v` as a string.
pub fn quote(v: &Val<'_>) -> String {
    let mut out = String::new();
    write_quote(v, &mut out);
    out
}

/// Go's `time.RFC3339Nano` in UTC: fraction digits only as needed, trailing zeros dropped.
pub fn rfc3339_nano(t: Timestamp) -> String {
    let mut out = String::with_capacity(30);
    write_rfc3339_nano(t, &mut out);
    out
}

/// Writes Go's `time.RFC3339Nano` of `t` in UTC: jiff's RFC 3339 printer is that format
/// for the years Go prints with four digits (every `Now` a template renders).
pub fn write_rfc3339_nano(t: Timestamp, out: &mut String) {
    let _ = write!(out, "{t}");
}

/// The deepest `YAML` indent accepted (in levels of two spaces).
const MAX_YAML_INDENT: i64 = 1024;

/// `YAML v [indent]`: `v` marshalled as YAML; with `indent` > 0, every line is prefixed by
/// a newline and `2 × indent` spaces (KWOK replaces each `\n` of `"\n" + yaml`).
pub fn yaml<'a>(v: &Val<'a>, indent: Option<&Val<'a>>) -> FnResult<'a> {
    let levels = yaml_levels(indent)?;
    let mut out = String::new();
    write_yaml_indented(v.view(), levels, &mut out);
    Ok(Val::text(out))
}

/// `YAML`'s indent in levels of two spaces (0 without one, or for one below 1).
pub fn yaml_levels(indent: Option<&Val<'_>>) -> Result<usize, String> {
    let levels = match indent.map(Val::view) {
        None => 0,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| format!("wrong type for value; expected int; got {}", v.type_name()))?,
    };
    if levels > MAX_YAML_INDENT {
        return Err(format!("indent {levels} is larger than {MAX_YAML_INDENT}"));
    }
    Ok(usize::try_from(levels).unwrap_or(0))
}

/// Writes what `YAML v levels` prints.
pub fn write_yaml_indented(v: View<'_>, levels: usize, out: &mut String) {
    if levels == 0 {
        write_yaml(v, out);
        return;
    }
    let mut doc = String::new();
    write_yaml(v, &mut doc);
    let pad = levels * 2;
    out.reserve(doc.len() * 2);
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', pad));
    for c in doc.chars() {
        out.push(c);
        if c == '\n' {
            out.extend(std::iter::repeat_n(' ', pad));
        }
    }
}

/// KWOK's default node conditions. As upstream, the times are null: stage templates set
/// `lastHeartbeatTime`/`lastTransitionTime` themselves.
pub fn node_conditions() -> &'static Value {
    static CONDITIONS: LazyLock<Value> = LazyLock::new(|| {
        let c = |ty: &str, status: &str, reason: &str, message: &str| {
            json!({
                "lastHeartbeatTime": null,
                "lastTransitionTime": null,
                "message": message,
                "reason": reason,
                "status": status,
                "type": ty,
            })
        };
        Value::Array(vec![
            c("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            c(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            c(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            c(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            c(
                "NetworkUnavailable",
                "False",
                "RouteCreated",
                "RouteController created a route",
            ),
        ])
    });
    &CONDITIONS
}

/// The object a `kwokctl scale` template is rendered for.
pub fn scale_target(host: &mut dyn Host) -> Result<&ScaleTarget, String> {
    host.scale_target()
        .ok_or_else(|| "only kwokctl scale templates have an object to name".to_owned())
}

/// `AddCIDR cidr n`: the `n`-th subnet after `cidr`, host bits kept
/// (`AddCIDR "10.0.0.1/24" 2` is `10.0.2.1/24`), as upstream kwokctl.
pub fn add_cidr(cidr: &Val<'_>, n: &Val<'_>) -> Result<String, String> {
    let text = string_arg(cidr)?;
    let (ip, len) = text
        .split_once('/')
        .ok_or_else(|| format!("invalid CIDR address: {text}"))?;
    let ip: IpAddr = ip.parse().map_err(|_| format!("invalid CIDR address: {text}"))?;
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    let len: u32 = len
        .parse()
        .ok()
        .filter(|l| *l <= bits)
        .ok_or_else(|| format!("invalid CIDR address: {text}"))?;
    let step = if len == 0 { 0 } else { 1u128 << (bits - len) };
    let shifted = offset_ip(ip, step.wrapping_mul(index_arg(n)? as u128))?;
    Ok(format!("{shifted}/{len}"))
}

/// `AddIP ip n`: the `n`-th address after `ip`.
pub fn add_ip(ip: &Val<'_>, n: &Val<'_>) -> Result<String, String> {
    let text = string_arg(ip)?;
    let ip: IpAddr = text.parse().map_err(|_| format!("invalid ip {text:?}"))?;
    Ok(offset_ip(ip, index_arg(n)? as u128)?.to_string())
}

fn index_arg(n: &Val<'_>) -> Result<u64, String> {
    match n.view().as_i64() {
        Some(i) => u64::try_from(i).map_err(|_| format!("negative offset {i}")),
        None => Err(format!(
            "wrong type for value; expected int; got {}",
            n.type_name()
        )),
    }
}

/// `ip` plus `offset`, failing past the end of its address space.
fn offset_ip(ip: IpAddr, offset: u128) -> Result<IpAddr, String> {
    let overflow = || format!("{ip} plus {offset} leaves the address space");
    Ok(match ip {
        IpAddr::V4(v4) => {
            let sum = u128::from(u32::from(v4))
                .checked_add(offset)
                .ok_or_else(overflow)?;
            IpAddr::V4(Ipv4Addr::from(u32::try_from(sum).map_err(|_| overflow())?))
        }
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(
            u128::from(v6).checked_add(offset).ok_or_else(overflow)?,
        )),
    })
}

/// A string argument of a KWOK function (nil is an error, as in Go).
pub fn string_arg<'v>(v: &'v Val<'_>) -> Result<&'v str, String> {
    match v {
        Val::Nil => Err("invalid value; expected string".into()),
        v => v
            .as_str()
            .ok_or_else(|| format!("wrong type for value; expected string; got {}", v.type_name())),
    }
}

fn bool_arg(v: &Val<'_>) -> Result<bool, String> {
    match v {
        Val::Bool(b) => Ok(*b),
        Val::Nil => Err("invalid value; expected bool".into()),
        v => Err(format!(
            "wrong type for value; expected bool; got {}",
            v.type_name()
        )),
    }
}

/// A list of strings.
pub fn strings<'a>(list: Vec<String>) -> Val<'a> {
    Val::Owned(Rc::new(Value::Array(
        list.into_iter().map(Value::String).collect(),
    )))
}

/// `PodIPWith nodeName hostNetwork uid name namespace` (and `PodIPsWith`); a full
/// pool stays typed (`CallError::PoolExhausted`).
pub fn pod_ip_with<'a>(a: &[Val<'a>], host: &mut dyn Host, all: bool) -> CallResult<'a> {
    let node = string_arg(&a[0])?;
    let host_network = bool_arg(&a[1])?;
    let (uid, name, namespace) = (string_arg(&a[2])?, string_arg(&a[3])?, string_arg(&a[4])?);
    // A host-network pod shares its node's network: its IPs are the node's.
    Ok(match (host_network, all) {
        (true, true) => strings(host.node_ips_with(node)),
        (true, false) => Val::text(host.node_ip_with(node)),
        (false, true) => strings(host.pod_ips_with(node, uid, name, namespace)?),
        (false, false) => Val::text(host.pod_ip_with(node, uid, name, namespace)?),
    })
}

/// The stand-in for a call of `name` with `args` (see [`Host::placeholders`]):
/// `<name>` without arguments, else `<name(args)>` with each argument as Go's `%#v`
/// prints it; `<i of …>` for element `i` of a list.
pub fn placeholder(name: &str, args: &[Val<'_>], element: Option<usize>) -> String {
    let mut out = String::from("<");
    if let Some(i) = element {
        let _ = write!(out, "{i} of ");
    }
    out.push_str(name);
    if !args.is_empty() {
        out.push('(');
        for (i, arg) in args.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match arg.view() {
                View::Str(s) => write_go_quote(s, &mut out),
                View::Nil => out.push_str("<nil>"),
                view => write_json(view, &mut out),
            }
        }
        out.push(')');
    }
    out.push('>');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn placeholder_should_print_arguments_as_go_sharp_v() {
        let args = [Val::Str("node"), Val::Bool(false), Val::Str(""), Val::Int(3)];
        assert_eq!(
            placeholder("PodIPWith", &args, None),
            r#"<PodIPWith("node", false, "", 3)>"#
        );
        assert_eq!(
            placeholder("NodeIPsWith", &args[..1], Some(1)),
            r#"<1 of NodeIPsWith("node")>"#
        );
        assert_eq!(placeholder("Now", &[], None), "<Now>");
    }

    #[test]
    fn quote_should_json_quote_strings_and_wrap_other_values() {
        let data = json!({"b": 1, "a": "x"});
        assert_eq!(quote(&Val::Str("a\"b")), r#""a\"b""#);
        assert_eq!(quote(&Val::Int(5)), r#""5""#);
        assert_eq!(quote(&Val::Nil), r#""null""#);
        assert_eq!(quote(&Val::from_data(&data)), r#""{\"a\":\"x\",\"b\":1}""#);
    }

    #[test]
    fn rfc3339_nano_should_trim_trailing_zeros_like_go() {
        let t: Timestamp = "2024-01-02T03:04:05.120Z".parse().unwrap();
        assert_eq!(rfc3339_nano(t), "2024-01-02T03:04:05.12Z");
        let t: Timestamp = "2024-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(rfc3339_nano(t), "2024-01-02T03:04:05Z");
        // Go's time.Time.Format(time.RFC3339Nano) of the same instants.
        for go in [
            "0001-01-01T00:00:00Z",
            "1970-01-01T00:00:00.000000001Z",
            "2026-12-06T04:23:20.5Z",
            "2026-12-31T23:59:59.999999999Z",
            "9999-12-30T12:00:00.01Z",
        ] {
            assert_eq!(rfc3339_nano(go.parse().unwrap()), go);
        }
    }

    #[test]
    fn yaml_with_indent_should_prefix_every_line() {
        let data = json!([{"address": "1.2.3.4", "type": "InternalIP"}]);
        let v = yaml(&Val::from_data(&data), Some(&Val::Int(1))).unwrap();
        assert_eq!(
            v.as_str(),
            Some("\n  - address: 1.2.3.4\n    type: InternalIP\n  ")
        );
    }

    #[test]
    fn node_conditions_should_list_the_five_kubelet_conditions() {
        let types: Vec<&str> = node_conditions()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "Ready",
                "MemoryPressure",
                "DiskPressure",
                "PIDPressure",
                "NetworkUnavailable"
            ]
        );
    }
}
