//! Request counts from the apiserver's `/metrics` (`apiserver_request_total`), and how
//! API Priority and Fairness ranked them (`apiserver_flowcontrol_*_requests_total`), and
//! the watches it closed because their client fell behind
//! (`apiserver_terminated_watchers_total`).

use std::collections::BTreeMap;

/// Request counts by `verb resource[/subresource]`.
pub type Requests = BTreeMap<String, u64>;

/// Scrapes `/metrics` through the admin client.
pub async fn requests(client: &kube::Client) -> kube::Result<Requests> {
    Ok(parse(&metrics(client).await?))
}

/// The counters of one scrape of `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests by kind ([`parse`]).
    pub requests: Requests,
    /// What APF did with them ([`parse_flows`]).
    pub flows: Requests,
    /// Watches closed as unresponsive, by resource ([`parse_unresponsive_watches`]).
    pub unresponsive_watches: Requests,
}

impl Counters {
    /// `after - before` of each counter ([`delta`]).
    pub fn delta(before: &Self, after: &Self) -> Self {
        Self {
            requests: delta(&before.requests, &after.requests),
            flows: delta(&before.flows, &after.flows),
            unresponsive_watches: delta(&before.unresponsive_watches, &after.unresponsive_watches),
        }
    }
}

/// One scrape of `/metrics`.
pub async fn counters(client: &kube::Client) -> kube::Result<Counters> {
    let text = metrics(client).await?;
    Ok(Counters {
        requests: parse(&text),
        flows: parse_flows(&text),
        unresponsive_watches: parse_unresponsive_watches(&text),
    })
}

async fn metrics(client: &kube::Client) -> kube::Result<String> {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("static request");
    client.request_text(req).await
}

/// The value of `name="…"` in a sample's label set.
fn label(labels: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    labels.find(&key).map(|i| {
        let rest = &labels[i + key.len()..];
        rest[..rest.find('"').unwrap_or(rest.len())].to_owned()
    })
}

/// The label set and value of each sample of the metric whose lines start with `prefix`
/// (`name{`); malformed lines are skipped.
fn samples<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = (&'a str, u64)> + 'a {
    text.lines()
        .filter(move |l| l.starts_with(prefix))
        .filter_map(|line| {
            let (labels, value) = line.rsplit_once(' ')?;
            Some((labels, value.parse::<f64>().ok()? as u64))
        })
}

/// Sums the APF counters by `dispatched|rejected <flow schema> <priority level>`
/// (nothing while APF is off).
pub fn parse_flows(text: &str) -> Requests {
    let mut out = Requests::new();
    for (prefix, what) in [
        ("apiserver_flowcontrol_dispatched_requests_total{", "dispatched"),
        ("apiserver_flowcontrol_rejected_requests_total{", "rejected"),
    ] {
        for (labels, value) in samples(text, prefix) {
            let key = format!(
                "{what} {} {}",
                label(labels, "flow_schema").unwrap_or_default(),
                label(labels, "priority_level").unwrap_or_default()
            );
            *out.entry(key).or_default() += value;
        }
    }
    out
}

/// `apiserver_terminated_watchers_total` by resource (`group/resource` outside the core
/// group): watches the apiserver closed because the client did not take their events
/// as fast as they came (its buffer for that watcher was full). The client then watches
/// again from where it was, and each event replayed to it is encoded for it alone,
/// outside the watch cache's shared encoding.
pub fn parse_unresponsive_watches(text: &str) -> Requests {
    let mut out = Requests::new();
    for (labels, value) in samples(text, "apiserver_terminated_watchers_total{") {
        let resource = label(labels, "resource").unwrap_or_default();
        let key = match label(labels, "group").filter(|g| !g.is_empty()) {
            Some(group) => format!("{group}/{resource}"),
            None => resource,
        };
        *out.entry(key).or_default() += value;
    }
    out
}

/// Sums `apiserver_request_total` samples by verb and resource.
pub fn parse(text: &str) -> Requests {
    let mut out = Requests::new();
    for (labels, value) in samples(text, "apiserver_request_total{") {
        let label = |name: &str| label(labels, name);
        let mut key = format!(
            "{} {}",
            label("verb").unwrap_or_default(),
            label("resource").unwrap_or_default()
        );
        if let Some(sub) = label("subresource").filter(|s| !s.is_empty()) {
            key = format!("{key}/{sub}");
        }
        *out.entry(key).or_default() += value;
    }
    out
}

/// `after - before` per key, dropping zeros.
pub fn delta(before: &Requests, after: &Requests) -> Requests {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k).copied().unwrap_or(0))))
        .filter(|(_, v)| *v > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_should_sum_by_verb_and_resource() {
        let text = r#"# HELP apiserver_request_total x
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 10
apiserver_request_total{code="429",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 7
apiserver_request_duration_seconds_bucket{le="1"} 3
"#;
        let r = parse(text);
        assert_eq!(r["POST pods"], 12);
        assert_eq!(r["PATCH pods/status"], 7);
        assert_eq!(r.len(), 2);
        let d = delta(&[("POST pods".to_owned(), 5)].into(), &r);
        assert_eq!(d["POST pods"], 7);
    }

    #[test]
    fn parse_unresponsive_watches_should_key_by_group_and_resource() {
        let text = r#"# HELP apiserver_terminated_watchers_total x
# TYPE apiserver_terminated_watchers_total counter
apiserver_terminated_watchers_total{group="",resource="pods"} 155
apiserver_terminated_watchers_total{group="coordination.k8s.io",resource="leases"} 2
apiserver_request_total{code="200",resource="pods",verb="WATCH"} 154
"#;
        let got = parse_unresponsive_watches(text);
        assert_eq!(
            got,
            Requests::from([
                ("pods".to_owned(), 155),
                ("coordination.k8s.io/leases".to_owned(), 2)
            ])
        );
        let before = Counters {
            unresponsive_watches: Requests::from([("pods".to_owned(), 40)]),
            ..Counters::default()
        };
        let after = Counters {
            unresponsive_watches: got,
            ..Counters::default()
        };
        assert_eq!(
            Counters::delta(&before, &after).unresponsive_watches,
            Requests::from([
                ("pods".to_owned(), 115),
                ("coordination.k8s.io/leases".to_owned(), 2)
            ])
        );
    }

    #[test]
    fn parse_flows_should_sum_by_schema_and_level() {
        let text = r#"apiserver_flowcontrol_dispatched_requests_total{flow_schema="service-accounts",priority_level="workload-low"} 40
apiserver_flowcontrol_dispatched_requests_total{flow_schema="kwokctl-kwok-controller",priority_level="node-high"} 7
apiserver_flowcontrol_rejected_requests_total{flow_schema="service-accounts",priority_level="workload-low",reason="queue-full"} 3
apiserver_flowcontrol_rejected_requests_total{flow_schema="service-accounts",priority_level="workload-low",reason="time-out"} 2
apiserver_request_total{code="201",resource="pods",verb="POST"} 10
"#;
        let f = parse_flows(text);
        assert_eq!(f["dispatched service-accounts workload-low"], 40);
        assert_eq!(f["dispatched kwokctl-kwok-controller node-high"], 7);
        assert_eq!(f["rejected service-accounts workload-low"], 5);
        assert_eq!(f.len(), 3);
    }
}
