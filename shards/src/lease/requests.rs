//! The lease requests: listing our leases at start-up, reading, creating, taking over
//! and renewing one. This is the worker's only I/O; what to do with a lease read is
//! [`decide::on_read`]'s answer.

use std::{collections::HashMap, sync::Arc, time::Duration};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
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
use crate::{flags::LeaseEncoding, metrics::Metrics};

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
            for mut lease in page.items {
                let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref());
                if let (Some(name), true) = (lease.metadata.name.clone(), holder == Some(&self.holder)) {
                    lease.metadata.managed_fields = None;
                    ours.insert(name, Box::new(lease));
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
        lease.metadata.managed_fields = None;
        self.put(name, Box::new(lease)).await
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
            Ok(written) => Renewed::Ok(stored(written)),
            // Gone, or written by someone else since our last write: read it again.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Renewed::Lost,
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
                Renewed::Ok(stored(lease))
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

/// What we keep of a Lease the apiserver returned: all of it but managedFields, so
/// the next PUT keeps whatever labels or fields others gave it.
fn stored(mut lease: Lease) -> Box<Lease> {
    lease.metadata.managed_fields = None;
    Box::new(lease)
}
