//! The lease requests: listing our leases at start-up, reading, creating, taking over
//! and renewing one. This is the worker's only I/O; what to do with a lease read is
//! [`decide::on_read`]'s answer.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ManagedFieldsEntry, MicroTime, ObjectMeta, OwnerReference,
};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use tracing::{debug, warn};

use super::{
    NAMESPACE,
    decide::{self, Ended, OnRead},
    wire,
};
use crate::{
    flags::{LeaseEncoding, LeaseManagedFields},
    metrics::Metrics,
};

/// Result of one request, sent back to the worker loop.
#[derive(Debug)]
pub(super) enum Renewed {
    /// Renewed (or created), as the apiserver now stores it; renew again after the normal interval.
    Ok(Box<Lease>),
    /// Our lease vanished or changed hands: read it before the next renewal.
    Lost,
    /// Another holder has it until this many seconds from now.
    HeldElsewhere(Duration),
    /// Failed; retry soon. A failed renewal gives its Lease back: its resourceVersion
    /// is still the precondition, so the retry needs no read.
    Failed(Option<Box<Lease>>),
}

impl Renewed {
    /// How it ended, and the lease to keep as our last write, if any.
    pub(super) fn split(self) -> (Ended, Option<Box<Lease>>) {
        match self {
            Self::Ok(lease) => (Ended::Written, Some(lease)),
            Self::Lost => (Ended::Lost, None),
            Self::HeldElsewhere(left) => (Ended::HeldElsewhere(left), None),
            Self::Failed(lease) => (Ended::Failed, lease),
        }
    }
}

/// Sends lease requests as `holder`, for leases of `duration`.
pub(super) struct Requests {
    pub(super) client: Client,
    pub(super) holder: String,
    pub(super) duration: Duration,
    /// How renewals are encoded.
    pub(super) encoding: LeaseEncoding,
    /// What renewals do with a Lease's `managedFields`.
    pub(super) managed_fields: LeaseManagedFields,
    /// Set once the apiserver refused the entry that clears them as invalid (one that
    /// does not know the reset): renewals keep them from then on.
    pub(super) clearing_refused: AtomicBool,
    pub(super) metrics: Arc<Metrics>,
    /// With `--scale-out`: the renewal interval, after which (and a margin) a Lease
    /// not renewed by its holder is taken over (see [`decide::on_read`]).
    pub(super) handover: Option<Duration>,
}

impl Requests {
    /// The leases held by our identity now (a restarted kwok's own, when `--id` is kept),
    /// listed a page at a time; empty if the list fails (each is then read when taken).
    pub(super) async fn list_ours(&self) -> HashMap<String, Box<Lease>> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), NAMESPACE);
        let mut ours = HashMap::new();
        let mut params = ListParams::default().limit(1000);
        loop {
            let page = match api.list(&params).await {
                Ok(page) => page,
                Err(e) => {
                    warn!(error = %e, "failed to list node leases; each is read when taken");
                    return HashMap::new();
                }
            };
            self.metrics.count("list", "200");
            for lease in page.items {
                let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref());
                if let (Some(name), true) = (lease.metadata.name.clone(), holder == Some(&self.holder)) {
                    ours.insert(name, stored(self.managed_fields(), lease));
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        debug!(
            leases = ours.len(),
            "node leases held by our identity at start-up"
        );
        ours
    }

    /// Acquisition: read the lease; create it if missing; take it if ours or expired;
    /// respect another live holder. `fresh`: create first, read only if it exists.
    pub(super) async fn acquire(&self, name: &str, uid: &str, fresh: bool) -> Renewed {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), NAMESPACE);
        if fresh {
            match self.create(&api, name, uid, Timestamp::now()).await {
                Renewed::Lost => {}
                other => return other,
            }
        }
        let current = match api.get_opt(name).await {
            Ok(current) => current,
            Err(e) => {
                warn!(lease = name, error = %e, "failed to read lease");
                return Renewed::Failed(None);
            }
        };
        self.metrics.count("get", "200");
        let now = Timestamp::now();
        let decision = decide::on_read(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.holder,
            now,
            self.handover,
        );
        let mut lease = match (decision, current) {
            (OnRead::LeaveFor(left), _) => return Renewed::HeldElsewhere(left),
            (OnRead::Renew | OnRead::TakeOver, Some(lease)) => lease,
            (OnRead::Create, _) | (_, None) => return self.create(&api, name, uid, now).await,
        };
        if decision == OnRead::TakeOver {
            let spec = lease.spec.get_or_insert_default();
            spec.holder_identity = Some(self.holder.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        self.put(name, stored(self.managed_fields(), lease)).await
    }

    /// `--node-lease-managed-fields`, unless the apiserver refused to clear them.
    fn managed_fields(&self) -> LeaseManagedFields {
        if self.clearing_refused.load(Ordering::Relaxed) {
            LeaseManagedFields::Keep
        } else {
            self.managed_fields
        }
    }

    /// Renewal of `lease` as we last wrote it (or read it, when taking it): one PUT
    /// with a new renewTime, no read, valid only if nobody wrote the lease since
    /// (its resourceVersion is the precondition).
    pub(super) async fn put(&self, name: &str, mut lease: Box<Lease>) -> Renewed {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), NAMESPACE);
        let spec = lease.spec.get_or_insert_default();
        spec.lease_duration_seconds = Some(self.duration.as_secs() as i32);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        let start = std::time::Instant::now();
        let result = match self.encoding {
            LeaseEncoding::Json => api.replace(name, &PostParams::default(), &lease).await,
            LeaseEncoding::Protobuf => wire::replace(&self.client, NAMESPACE, name, &lease).await,
        };
        let seconds = start.elapsed().as_secs_f64();
        match &result {
            Ok(_) => self.metrics.request("put", "200", seconds),
            Err(kube::Error::Api(s)) => self.metrics.request("put", &s.code.to_string(), seconds),
            Err(_) => {}
        }
        match result {
            Ok(written) => Renewed::Ok(stored(self.managed_fields(), written)),
            // Gone, or written by someone else since our last write: read it again.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Renewed::Lost,
            Err(kube::Error::Api(s)) if s.code == 422 && lease.metadata.managed_fields.is_some() => {
                if !self.clearing_refused.swap(true, Ordering::Relaxed) {
                    warn!(lease = name, error = %s, "the apiserver refused to clear a node Lease's managedFields; renewals keep them from now on");
                }
                lease.metadata.managed_fields = None;
                Renewed::Failed(Some(lease))
            }
            Err(e) => {
                warn!(lease = name, error = %e, "failed to renew lease");
                Renewed::Failed(Some(lease))
            }
        }
    }

    pub(super) async fn create(&self, api: &Api<Lease>, name: &str, uid: &str, now: Timestamp) -> Renewed {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(NAMESPACE.to_owned()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".to_owned(),
                    kind: "Node".to_owned(),
                    name: name.to_owned(),
                    uid: uid.to_owned(),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.holder.clone()),
                lease_duration_seconds: Some(self.duration.as_secs() as i32),
                renew_time: Some(MicroTime(now)),
                acquire_time: Some(MicroTime(now)),
                ..LeaseSpec::default()
            }),
        };
        match api.create(&PostParams::default(), &lease).await {
            Ok(lease) => {
                debug!(lease = name, "created");
                self.metrics.count("create", "201");
                Renewed::Ok(stored(self.managed_fields(), lease))
            }
            // Another controller created it first: read who holds it.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.metrics.count("create", "409");
                Renewed::Lost
            }
            Err(e) => {
                warn!(lease = name, error = %e, "failed to create lease");
                Renewed::Failed(None)
            }
        }
    }
}

/// What we keep of a Lease the apiserver returned, to PUT next: all of it, so the next
/// PUT keeps whatever labels or fields others gave it, but its managedFields. A PUT
/// without them leaves the apiserver's as they are; with `strip`, a Lease that has some
/// is sent with the one empty entry that clears them (`[{}]`). On an object with none,
/// the apiserver's field manager tracks nothing on update: with the smaller object, a
/// quarter less apiserver CPU per renewal (`perf/results/2026-12-07-lease-managed-fields/`).
fn stored(managed_fields: LeaseManagedFields, mut lease: Lease) -> Box<Lease> {
    let has_some = lease
        .metadata
        .managed_fields
        .as_ref()
        .is_some_and(|m| !m.is_empty());
    lease.metadata.managed_fields = match managed_fields {
        LeaseManagedFields::Strip if has_some => Some(vec![ManagedFieldsEntry::default()]),
        LeaseManagedFields::Strip | LeaseManagedFields::Keep => None,
    };
    Box::new(lease)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::lease::stand_in::StandIn;

    fn lease(managed: Option<Vec<ManagedFieldsEntry>>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                resource_version: Some("7".into()),
                managed_fields: managed,
                ..ObjectMeta::default()
            },
            spec: None,
        }
    }

    fn written_by_kwok() -> Option<Vec<ManagedFieldsEntry>> {
        Some(vec![ManagedFieldsEntry {
            manager: Some("kwok".into()),
            operation: Some("Update".into()),
            ..ManagedFieldsEntry::default()
        }])
    }

    #[test]
    fn strip_should_send_the_clearing_entry_only_while_the_lease_has_managed_fields() {
        let next = stored(LeaseManagedFields::Strip, lease(written_by_kwok()));
        assert_eq!(
            serde_json::to_value(&next.metadata).unwrap(),
            serde_json::json!({"name": "n1", "resourceVersion": "7", "managedFields": [{}]}),
        );
        // Cleared: the next PUTs send none, and the apiserver tracks none.
        for none in [None, Some(vec![])] {
            assert_eq!(
                stored(LeaseManagedFields::Strip, lease(none))
                    .metadata
                    .managed_fields,
                None
            );
        }
    }

    /// Requests as holder `me` to `apiserver`, clearing managedFields.
    fn stripping(apiserver: &StandIn) -> Requests {
        Requests {
            client: apiserver.client(),
            holder: "me".into(),
            duration: Duration::from_secs(40),
            encoding: LeaseEncoding::Json,
            managed_fields: LeaseManagedFields::Strip,
            clearing_refused: AtomicBool::new(false),
            metrics: Arc::new(Metrics::unregistered()),
            handover: None,
        }
    }

    /// Lease `name`, held by `me`, with the entry a write by kwok leaves.
    fn held_with_managed_fields(name: &str) -> Value {
        serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": "1",
                "managedFields": [{"manager": "kwok", "operation": "Update"}]},
            "spec": {"holderIdentity": "me", "leaseDurationSeconds": 40},
        })
    }

    /// An apiserver that refuses the entry that clears managedFields (422): the renewal
    /// that sent it fails, and every renewal after, on every Lease, keeps them.
    #[tokio::test]
    async fn a_refused_clearing_should_fail_once_then_keep_managed_fields() {
        let apiserver = StandIn::default();
        apiserver.refuse_clearing.store(true, Ordering::SeqCst);
        apiserver.set("n1", Some(held_with_managed_fields("n1")));
        apiserver.set("n2", Some(held_with_managed_fields("n2")));
        let requests = stripping(&apiserver);
        let Renewed::Failed(Some(refused)) = requests.acquire("n1", "u1", false).await else {
            panic!("the clearing PUT should fail");
        };
        assert_eq!(apiserver.calls(), ["GET 200", "PUT 422"]);
        assert_eq!(refused.metadata.managed_fields, None, "sent again without them");
        let Renewed::Ok(renewed) = requests.put("n1", refused).await else {
            panic!("the renewal without managedFields should pass");
        };
        assert_eq!(renewed.metadata.managed_fields, None, "kept: none sent");
        assert!(matches!(requests.put("n1", renewed).await, Renewed::Ok(_)));
        // Another Lease, read with its entries, is not cleared either.
        assert!(matches!(
            requests.acquire("n2", "u2", false).await,
            Renewed::Ok(_)
        ));
        assert_eq!(apiserver.calls(), ["PUT 200", "PUT 200", "GET 200", "PUT 200"]);
        for name in ["n1", "n2"] {
            assert_eq!(
                apiserver.get(name).unwrap()["metadata"]["managedFields"],
                serde_json::json!([{"manager": "kwok", "operation": "Update"}]),
                "{name}: the apiserver's entries stay"
            );
        }
    }

    /// The same apiserver without the refusal: the first renewal clears them.
    #[tokio::test]
    async fn strip_should_clear_the_stored_managed_fields_with_the_first_renewal() {
        let apiserver = StandIn::default();
        apiserver.set("n1", Some(held_with_managed_fields("n1")));
        let requests = stripping(&apiserver);
        assert!(matches!(
            requests.acquire("n1", "u1", false).await,
            Renewed::Ok(_)
        ));
        assert_eq!(apiserver.calls(), ["GET 200", "PUT 200"]);
        assert_eq!(
            apiserver.get("n1").unwrap()["metadata"]["managedFields"],
            Value::Null
        );
    }

    #[test]
    fn keep_should_send_no_managed_fields_so_the_apiserver_keeps_its_own() {
        let next = stored(LeaseManagedFields::Keep, lease(written_by_kwok()));
        assert_eq!(next.metadata.managed_fields, None);
        assert_eq!(next.metadata.resource_version.as_deref(), Some("7"));
    }
}
