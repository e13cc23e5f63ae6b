//! A stand-in apiserver of Leases for the lease tests: GET (one, or the list), POST
//! (409 if the name is taken) and PUT (404 if absent, 409 unless the resourceVersion
//! matches), each recorded as "METHOD code"; `fail` answers the next request with that
//! code instead, `refuse_writes` every POST and PUT with 503 while set, and `refuse_all`
//! every request. As the apiserver does, a PUT without `managedFields` keeps the stored
//! ones and one with the single empty entry clears them, unless `refuse_clearing` is
//! set: then it is answered 422, as an apiserver that does not know the reset would.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use kube::{Client, client::Body};
use serde_json::{Value, json};

#[derive(Clone, Default)]
pub(super) struct StandIn {
    leases: Arc<Mutex<BTreeMap<String, Value>>>,
    calls: Arc<Mutex<Vec<String>>>,
    /// The code to answer the next request with.
    pub(super) fail: Arc<Mutex<Option<u16>>>,
    /// While set, every write is answered 503 (an apiserver too busy for them).
    pub(super) refuse_writes: Arc<AtomicBool>,
    /// While set, every request is answered 503.
    pub(super) refuse_all: Arc<AtomicBool>,
    /// While set, a PUT clearing `managedFields` is answered 422.
    pub(super) refuse_clearing: Arc<AtomicBool>,
}

impl StandIn {
    pub(super) fn client(&self) -> Client {
        let this = self.clone();
        let service = tower::service_fn(move |request: http::Request<Body>| {
            let this = this.clone();
            async move {
                let method = request.method().as_str().to_owned();
                let name = request
                    .uri()
                    .path()
                    .rsplit_once("/leases/")
                    .map(|(_, name)| name.to_owned());
                let body = request.into_body().collect_bytes().await.unwrap();
                let (code, answer) = this.answer(&method, name, &body);
                this.calls.lock().unwrap().push(format!("{method} {code}"));
                let mut response = http::Response::new(Body::from(answer.to_string().into_bytes()));
                *response.status_mut() = http::StatusCode::from_u16(code).unwrap();
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        Client::new(service, "default")
    }

    fn answer(&self, method: &str, name: Option<String>, body: &[u8]) -> (u16, Value) {
        let status = |code: u16| {
            // kube's `get_opt` reads a 404 as "none" by its reason.
            let reason = match code {
                404 => "NotFound",
                409 => "Conflict",
                _ => "Failure",
            };
            (code, json!({"kind": "Status", "code": code, "reason": reason}))
        };
        if let Some(code) = self.fail.lock().unwrap().take() {
            return status(code);
        }
        let writes = matches!(method, "POST" | "PUT") && self.refuse_writes.load(Ordering::SeqCst);
        if writes || self.refuse_all.load(Ordering::SeqCst) {
            return status(503);
        }
        let mut leases = self.leases.lock().unwrap();
        let rv = |l: &Value| l["metadata"]["resourceVersion"].as_str().unwrap_or("").to_owned();
        match (method, name) {
            ("GET", None) => {
                let items: Vec<Value> = leases.values().cloned().collect();
                (
                    200,
                    json!({"kind": "LeaseList", "apiVersion": "coordination.k8s.io/v1",
                    "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            ("GET", Some(name)) => leases.get(&name).map_or(status(404), |l| (200, l.clone())),
            ("POST" | "PUT", name) => {
                let mut sent: Value = serde_json::from_slice(body).unwrap();
                let name = name.unwrap_or_else(|| sent["metadata"]["name"].as_str().unwrap().to_owned());
                let stored = leases.get(&name).map(rv);
                match (method, &stored) {
                    ("POST", Some(_)) => return status(409),
                    ("PUT", None) => return status(404),
                    ("PUT", Some(s)) if *s != rv(&sent) => return status(409),
                    _ => {}
                }
                let managed = &sent["metadata"]["managedFields"];
                if *managed == json!([{}]) {
                    if self.refuse_clearing.load(Ordering::SeqCst) {
                        return (422, json!({"kind": "Status", "code": 422, "reason": "Invalid"}));
                    }
                    sent["metadata"].as_object_mut().unwrap().remove("managedFields");
                } else if managed.is_null()
                    && let Some(kept) = leases.get(&name).map(|l| &l["metadata"]["managedFields"])
                    && !kept.is_null()
                {
                    sent["metadata"]["managedFields"] = kept.clone();
                }
                let next = stored.map_or(1, |s| s.parse::<u64>().unwrap() + 1);
                sent["metadata"]["resourceVersion"] = json!(next.to_string());
                leases.insert(name, sent.clone());
                (if method == "POST" { 201 } else { 200 }, sent)
            }
            _ => status(405),
        }
    }

    /// The stored Lease `name`.
    pub(super) fn get(&self, name: &str) -> Option<Value> {
        self.leases.lock().unwrap().get(name).cloned()
    }

    /// Stores (or with `None`, deletes) Lease `name`, as another writer would.
    pub(super) fn set(&self, name: &str, lease: Option<Value>) {
        let mut leases = self.leases.lock().unwrap();
        match lease {
            Some(lease) => leases.insert(name.to_owned(), lease),
            None => leases.remove(name),
        };
    }

    /// The calls since the last look.
    pub(super) fn calls(&self) -> Vec<String> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }
}
