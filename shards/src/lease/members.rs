//! `--scale-out`: this kwok's member Lease, and who the live members are.
//!
//! Every fifth of its duration the task renews our member Lease (`kwok-member-<id>` in
//! [`NAMESPACE`], labelled [`MEMBER_LABEL`]; one PUT of the Lease as we last wrote it,
//! as node Leases are renewed), lists the member Leases, and tells the
//! lease worker the live members: those whose Lease is unexpired, and us while our own
//! last successful renewal is younger than the duration. Past that we are fenced
//! ([`kwok_members::handover::fenced`]): no stage write goes out (the member fence),
//! and our table is frozen as it was, so we keep renewing the node Leases we hold and
//! nobody takes them over; on a saturated apiserver every member can be late at once,
//! and letting go then left nodes unrenewed. Only after three durations
//! ([`kwok_members::handover::leaves`]), and only while another member is live, do we
//! drop out of our own table and let go of every node. A kwok cut off from the
//! apiserver renews nothing anyway: the others take its nodes over as their Leases go
//! un-renewed. Polling, not watching: a handful of small objects every two seconds.

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tracing::{info, warn};

use super::{Fence, IpSlot, LeaseMsg, NAMESPACE};
use crate::metrics::Metrics;

/// The label (with value `"true"`) that marks member Leases.
pub const MEMBER_LABEL: &str = "kwok.x-k8s.io/member";

/// Renews our member Lease and reports the live members.
pub struct MemberLease {
    client: Client,
    me: String,
    duration: Duration,
    metrics: Arc<Metrics>,
    /// Open until our member Lease would expire: every write checks it.
    fence: Fence,
    /// The members as last reported, for the shards: they drive the objects not bound
    /// to a node that [`kwok_members::owner_of`] gives us.
    shards: watch::Sender<Arc<[String]>>,
    /// Our IP slot, renewed before the member Lease: the fence also closes when it
    /// would expire.
    slot: IpSlot,
}

impl MemberLease {
    /// The member `me`, with a Lease of `duration`; `fence` is opened up to the expiry
    /// of each renewal that lands.
    pub fn new(
        client: Client,
        me: String,
        duration: Duration,
        metrics: Arc<Metrics>,
        fence: Fence,
        shards: watch::Sender<Arc<[String]>>,
        slot: IpSlot,
    ) -> Self {
        Self {
            client,
            me,
            duration,
            metrics,
            fence,
            shards,
            slot,
        }
    }

    /// Tells the lease worker (through `tx`) and the shards the live members; false
    /// once the lease worker is gone.
    fn report(&self, tx: &mpsc::UnboundedSender<LeaseMsg>, members: &[String]) -> bool {
        self.shards.send_replace(members.into());
        tx.send(LeaseMsg::Members(members.to_vec())).is_ok()
    }

    /// Runs until the lease worker's channel `tx` closes.
    pub async fn run(mut self, tx: mpsc::UnboundedSender<LeaseMsg>) {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), NAMESPACE);
        let name = lease_name(&self.me);
        let mut tick = tokio::time::interval(self.duration / 5);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When our last successful renewal was sent.
        let mut renewed: Option<Instant> = None;
        // Our member Lease as our last write left it.
        let mut last: Option<Lease> = None;
        let mut others: Vec<String> = Vec::new();
        // When the member Leases were last listed: `others` older than a duration may
        // be as late as we are.
        let mut listed: Option<Instant> = None;
        let mut reported: Option<Vec<String>> = None;
        loop {
            tick.tick().await;
            // First, from before this renewal: a kwok resumed after a long stop must not
            // count itself a member on the strength of a renewal that has not landed yet.
            if self.leaves(renewed, self.known_live(&others, listed))
                && reported.as_ref().is_some_and(|r| r.contains(&self.me))
            {
                if !self.report(&tx, &others) {
                    return;
                }
                reported = Some(others.clone());
            }
            // The slot first: one lost while we were away is let go (and its
            // addresses not yet written handed out anew) before the fence reopens.
            let slot_until = self.slot.tick().await;
            let sent = Instant::now();
            match self.renew(&api, &name, &mut last).await {
                Ok(()) => {
                    renewed = Some(sent);
                    // The others count our expiry from the renewTime written, no
                    // earlier than `sent`; an IP slot's holder, likewise from its own.
                    let until = sent + self.duration;
                    self.fence.open_until(slot_until.map_or(until, |s| s.min(until)));
                }
                Err(e) => warn!(lease = %name, error = %e, "failed to renew the member lease"),
            }
            match api
                .list(&ListParams::default().labels(&format!("{MEMBER_LABEL}=true")))
                .await
            {
                Ok(list) => {
                    others = live_others(&list.items, &self.me, Timestamp::now());
                    listed = Some(Instant::now());
                }
                Err(e) => warn!(error = %e, "failed to list member leases; keeping the last members seen"),
            }
            let fenced = self.fenced(renewed);
            self.metrics.member_fenced.set(i64::from(fenced));
            // Fenced but not gone: the apiserver is likely just slow for every member
            // at once, so the table is frozen as it was (no node let go, none taken)
            // until our renewal lands again or we leave.
            if fenced && !self.leaves(renewed, self.known_live(&others, listed)) {
                continue;
            }
            let mut members = others.clone();
            if !fenced {
                members.push(self.me.clone());
            }
            members.sort_unstable();
            if reported.as_ref() != Some(&members) {
                info!(members = ?members, "kwok members changed");
                if !self.report(&tx, &members) {
                    return;
                }
                reported = Some(members);
            }
        }
    }

    /// `others`, listed at `listed`, if that was within a duration: the members known
    /// live now. An older list says nothing (the apiserver may be failing everyone).
    fn known_live<'a>(&self, others: &'a [String], listed: Option<Instant>) -> &'a [String] {
        match listed.is_some_and(|at| at.elapsed() < self.duration) {
            true => others,
            false => &[],
        }
    }

    /// Whether we drop out of our own table now (let go of every node), our last
    /// successful renewal sent at `renewed`: only well after we are fenced
    /// ([`kwok_members::handover::leaves`]), and only while `others` are live to take
    /// our nodes over. With no other member live the apiserver is slow for all of us,
    /// and letting go would only leave every node un-renewed: 4 kwoks on 10,000 nodes
    /// all dropped out together 40 s into creating 100,000 pods, and 6,051 node Leases
    /// expired (`perf/results/2026-12-05-large-bound-replicas-fetch/`).
    fn leaves(&self, renewed: Option<Instant>, others: &[String]) -> bool {
        !others.is_empty()
            && renewed.is_none_or(|r| {
                kwok_members::handover::leaves(Instant::now().saturating_duration_since(r), self.duration)
            })
    }

    /// Whether we must stop writing now, our last successful renewal sent at `renewed`.
    fn fenced(&self, renewed: Option<Instant>) -> bool {
        renewed.is_none_or(|r| {
            kwok_members::handover::fenced(Instant::now().saturating_duration_since(r), self.duration)
        })
    }

    /// Creates or renews our member Lease, `last` as our last write left it: a PUT of
    /// it with a new renewTime, its resourceVersion the precondition. Only when there
    /// is none, or the PUT finds the Lease changed or gone, is it read (and created).
    async fn renew(&self, api: &Api<Lease>, name: &str, last: &mut Option<Lease>) -> Result<(), kube::Error> {
        let now = MicroTime(Timestamp::now());
        if let Some(mut lease) = last.take() {
            lease.spec.get_or_insert_default().renew_time = Some(now.clone());
            match api.replace(name, &PostParams::default(), &lease).await {
                Ok(written) => {
                    *last = Some(without_managed_fields(written));
                    return Ok(());
                }
                // Not sent, timed out, or the apiserver busy: unknown whether it landed,
                // and the next PUT conflicts if it did.
                Err(e) if !refused(&e) => {
                    *last = Some(lease);
                    return Err(e);
                }
                // Changed by someone else, deleted, or refused as it was (a 4xx): read
                // it again below.
                Err(_) => {}
            }
        }
        let seconds = self.duration.as_secs() as i32;
        let written = match api.get_opt(name).await? {
            Some(mut lease) => {
                lease.metadata.managed_fields = None;
                let spec = lease.spec.get_or_insert_default();
                if spec.holder_identity.as_deref() != Some(&self.me) {
                    spec.acquire_time = Some(now.clone());
                }
                spec.holder_identity = Some(self.me.clone());
                spec.lease_duration_seconds = Some(seconds);
                spec.renew_time = Some(now);
                api.replace(name, &PostParams::default(), &lease).await?
            }
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        namespace: Some(NAMESPACE.to_owned()),
                        labels: Some([(MEMBER_LABEL.to_owned(), "true".to_owned())].into()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.me.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        ..LeaseSpec::default()
                    }),
                };
                api.create(&PostParams::default(), &lease).await?
            }
        };
        *last = Some(without_managed_fields(written));
        Ok(())
    }
}

/// Whether the apiserver refused the request as sent (a 4xx other than 429), so sending
/// the same again would fail again.
fn refused(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(e) if (400..500).contains(&e.code) && e.code != 429)
}

/// A Lease to PUT again: managedFields sent with an update would replace the server's.
fn without_managed_fields(mut lease: Lease) -> Lease {
    lease.metadata.managed_fields = None;
    lease
}

/// The name of `member`'s Lease: `kwok-member-` and the identity, lower-cased, with
/// anything a Lease name cannot hold turned into `-`.
pub fn lease_name(member: &str) -> String {
    let cleaned: String = member
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .collect();
    format!("kwok-member-{}", cleaned.trim_matches(['-', '.']))
}

/// When `lease` expires: its renewTime plus its duration (`None` if never renewed).
pub(super) fn expiry(lease: &Lease) -> Option<Timestamp> {
    let spec = lease.spec.as_ref()?;
    let seconds = spec.lease_duration_seconds.unwrap_or(0).max(0) as u64;
    Some(spec.renew_time.as_ref()?.0 + Duration::from_secs(seconds))
}

/// The holders of unexpired member Leases in `leases` at `now`, but `me`.
fn live_others(leases: &[Lease], me: &str, now: Timestamp) -> Vec<String> {
    let mut live: Vec<String> = leases
        .iter()
        .filter_map(|lease| {
            let spec = lease.spec.as_ref()?;
            let holder = spec
                .holder_identity
                .as_deref()
                .filter(|h| !h.is_empty() && *h != me)?;
            (expiry(lease)? > now).then(|| holder.to_owned())
        })
        .collect();
    live.sort_unstable();
    live.dedup();
    live
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::lease::stand_in::StandIn;

    /// Member `kwok-a` of `duration` (its IP slot too) against `apiserver`.
    fn member(apiserver: &StandIn, duration: Duration) -> MemberLease {
        let client = apiserver.client();
        let metrics = Arc::new(Metrics::unregistered());
        let (shards, _) = watch::channel(Arc::from(Vec::new()));
        let cidr = crate::ipam::Cidr::parse("10.0.0.1/24").unwrap();
        let slot = IpSlot::new(
            Api::namespaced(client.clone(), NAMESPACE),
            "kwok-a".into(),
            duration,
            crate::host::SharedIps::scale_out(cidr),
            metrics.clone(),
        );
        MemberLease::new(
            client,
            "kwok-a".into(),
            duration,
            metrics,
            Fence::closed(),
            shards,
            slot,
        )
    }

    #[tokio::test]
    async fn a_member_lease_should_be_renewed_by_one_put_and_read_again_only_when_changed() {
        let apiserver = StandIn::default();
        let member = member(&apiserver, Duration::from_secs(10));
        let api: Api<Lease> = Api::namespaced(apiserver.client(), NAMESPACE);
        let name = lease_name("kwok-a");
        let mut last = None;
        member.renew(&api, &name, &mut last).await.unwrap();
        assert_eq!(apiserver.calls(), ["GET 404", "POST 201"], "created");
        member.renew(&api, &name, &mut last).await.unwrap();
        member.renew(&api, &name, &mut last).await.unwrap();
        assert_eq!(
            apiserver.calls(),
            ["PUT 200", "PUT 200"],
            "renewed without a read"
        );
        // Someone else wrote it (another kwok with our identity, or a person): the PUT
        // is refused, and the Lease is read and written again.
        let mut stored = apiserver.get(&name).unwrap();
        stored["metadata"]["resourceVersion"] = json!("100");
        stored["spec"]["holderIdentity"] = json!("someone");
        let acquired = stored["spec"]["acquireTime"].clone();
        apiserver.set(&name, Some(stored));
        member.renew(&api, &name, &mut last).await.unwrap();
        assert_eq!(apiserver.calls(), ["PUT 409", "GET 200", "PUT 200"]);
        let lease = apiserver.get(&name).unwrap();
        assert_eq!(lease["spec"]["holderIdentity"], "kwok-a");
        assert_eq!(lease["metadata"]["resourceVersion"], "101");
        assert_ne!(
            lease["spec"]["acquireTime"], acquired,
            "acquired again after someone held it"
        );
        member.renew(&api, &name, &mut last).await.unwrap();
        assert_eq!(apiserver.calls(), ["PUT 200"]);
        // A busy apiserver: the same PUT is tried again, no read.
        *apiserver.fail.lock().unwrap() = Some(503);
        assert!(member.renew(&api, &name, &mut last).await.is_err());
        member.renew(&api, &name, &mut last).await.unwrap();
        assert_eq!(apiserver.calls(), ["PUT 503", "PUT 200"]);
        // Refused as sent: read again rather than sending the same.
        *apiserver.fail.lock().unwrap() = Some(422);
        member.renew(&api, &name, &mut last).await.unwrap();
        assert_eq!(apiserver.calls(), ["PUT 422", "GET 200", "PUT 200"]);
        // Deleted: created again.
        apiserver.set(&name, None);
        member.renew(&api, &name, &mut last).await.unwrap();
        assert_eq!(apiserver.calls(), ["PUT 404", "GET 404", "POST 201"]);
    }

    /// The members reported on `rx` so far.
    fn reports(rx: &mut mpsc::UnboundedReceiver<LeaseMsg>) -> Vec<Vec<String>> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .filter_map(|msg| match msg {
                LeaseMsg::Members(members) => Some(members),
                _ => None,
            })
            .collect()
    }

    /// A member whose renewals fail for three durations drops out of its own table
    /// (letting go of every node) only while another member is live to take its nodes
    /// over; with none live the apiserver is slow for everyone, and it stays.
    #[tokio::test]
    async fn a_fenced_member_should_leave_only_while_another_member_is_live() {
        const DURATION: Duration = Duration::from_millis(400);
        let apiserver = StandIn::default();
        let member = member(&apiserver, DURATION);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(member.run(tx));
        tokio::time::sleep(DURATION).await;
        assert_eq!(reports(&mut rx), [vec!["kwok-a".to_owned()]]);

        // Every write refused for six durations, nobody else live: no report, so the
        // lease worker keeps its table (and renews the node Leases it can).
        apiserver
            .refuse_writes
            .store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(DURATION * 6).await;
        assert_eq!(reports(&mut rx), Vec::<Vec<String>>::new());

        // Another member is live, but every request fails: the last list, from before
        // the trouble, does not tell who is live now, so we stay.
        let renewed = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let b = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": lease_name("kwok-b"), "namespace": NAMESPACE,
                "labels": {MEMBER_LABEL: "true"}, "resourceVersion": "50"},
            "spec": {"holderIdentity": "kwok-b", "leaseDurationSeconds": 3600, "renewTime": renewed},
        });
        apiserver.set(&lease_name("kwok-b"), Some(b.clone()));
        apiserver
            .refuse_all
            .store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(DURATION * 6).await;
        assert_eq!(reports(&mut rx), Vec::<Vec<String>>::new());
        apiserver
            .refuse_all
            .store(false, std::sync::atomic::Ordering::SeqCst);

        // Another member is live: we leave, and it takes our nodes over.
        tokio::time::sleep(DURATION).await;
        assert_eq!(reports(&mut rx), [vec!["kwok-b".to_owned()]]);
        task.abort();
    }

    fn lease(holder: &str, renewed_secs_ago: i64, duration: i32, now: Timestamp) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                renew_time: Some(MicroTime(now - jiff::SignedDuration::from_secs(renewed_secs_ago))),
                lease_duration_seconds: Some(duration),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn live_members_should_be_the_unexpired_holders_but_us() {
        let now: Timestamp = "2026-12-03T12:00:00Z".parse().unwrap();
        let leases = [
            lease("kwok-b", 3, 10, now),
            lease("kwok-a", 1, 10, now),
            lease("me", 1, 10, now),
            lease("gone", 11, 10, now),
            lease("kwok-a", 2, 10, now),
        ];
        assert_eq!(live_others(&leases, "me", now), ["kwok-a", "kwok-b"]);
    }

    #[test]
    fn lease_names_should_be_valid_object_names() {
        assert_eq!(lease_name("kwok-host-0"), "kwok-member-kwok-host-0");
        assert_eq!(lease_name("Kwok_Host:1"), "kwok-member-kwok-host-1");
    }
}
