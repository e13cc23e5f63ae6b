//! Request counts from the apiserver's `/metrics` (`apiserver_request_total`).

use std::collections::BTreeMap;

/// Request counts by `verb resource[/subresource]`.
pub type Requests = BTreeMap<String, u64>;

/// Scrapes `/metrics` through the admin client.
pub async fn requests(client: &kube::Client) -> kube::Result<Requests> {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("static request");
    Ok(parse(&client.request_text(req).await?))
}

/// Sums `apiserver_request_total` samples by verb and resource.
pub fn parse(text: &str) -> Requests {
    let mut out = Requests::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else { continue };
        let label = |name: &str| {
            let key = format!("{name}=\"");
            labels.find(&key).map(|i| {
                let rest = &labels[i + key.len()..];
                rest[..rest.find('"').unwrap_or(rest.len())].to_owned()
            })
        };
        let mut key = format!(
            "{} {}",
            label("verb").unwrap_or_default(),
            label("resource").unwrap_or_default()
        );
        if let Some(sub) = label("subresource").filter(|s| !s.is_empty()) {
            key = format!("{key}/{sub}");
        }
        *out.entry(key).or_default() += value as u64;
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
}
