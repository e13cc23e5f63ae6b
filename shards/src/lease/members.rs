//! `--scale-out`: this kwok's member Lease, and who the live members are.
//!
//! Every fifth of its duration the task renews our member Lease (`kwok-member-<id>` in
//! [`NAMESPACE`], labelled [`MEMBER_LABEL`]), lists the member Leases, and tells the
//! lease worker the live members: those whose Lease is unexpired, and us while our own
//! last successful renewal is younger than the duration. Past that we are fenced
//! ([`kwok_members::handover::fenced`]): no stage write goes out (the member fence),
//! and our table is frozen as it was, so we keep renewing the node Leases we hold and
//! nobody takes them over; on a saturated apiserver every member can be late at once,
//! and letting go then left nodes unrenewed. Only after three durations
//! ([`kwok_members::handover::leaves`]) do we drop out of our own table and let go of
//! every node. A kwok cut off from the apiserver renews nothing anyway: the others
//! take its nodes over as their Leases go un-renewed. Polling, not watching: a handful
//! of small objects every two seconds.

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

use super::{Fence, LeaseMsg, NAMESPACE};
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
    ) -> Self {
        Self {
            client,
            me,
            duration,
            metrics,
            fence,
            shards,
        }
    }

    /// Tells the lease worker (through `tx`) and the shards the live members; false
    /// once the lease worker is gone.
    fn report(&self, tx: &mpsc::UnboundedSender<LeaseMsg>, members: &[String]) -> bool {
        self.shards.send_replace(members.into());
        tx.send(LeaseMsg::Members(members.to_vec())).is_ok()
    }

    /// Runs until the lease worker's channel `tx` closes.
    pub async fn run(self, tx: mpsc::UnboundedSender<LeaseMsg>) {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), NAMESPACE);
        let name = lease_name(&self.me);
        let mut tick = tokio::time::interval(self.duration / 5);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When our last successful renewal was sent.
        let mut renewed: Option<Instant> = None;
        let mut others: Vec<String> = Vec::new();
        let mut reported: Option<Vec<String>> = None;
        loop {
            tick.tick().await;
            // First, from before this renewal: a kwok resumed after a long stop must not
            // count itself a member on the strength of a renewal that has not landed yet.
            if self.leaves(renewed) && reported.as_ref().is_some_and(|r| r.contains(&self.me)) {
                if !self.report(&tx, &others) {
                    return;
                }
                reported = Some(others.clone());
            }
            let sent = Instant::now();
            match self.renew(&api, &name).await {
                Ok(()) => {
                    renewed = Some(sent);
                    // The others count our expiry from the renewTime written, no
                    // earlier than `sent`.
                    self.fence.open_until(sent + self.duration);
                }
                Err(e) => warn!(lease = %name, error = %e, "failed to renew the member lease"),
            }
            match api
                .list(&ListParams::default().labels(&format!("{MEMBER_LABEL}=true")))
                .await
            {
                Ok(list) => others = live_others(&list.items, &self.me, Timestamp::now()),
                Err(e) => warn!(error = %e, "failed to list member leases; keeping the last members seen"),
            }
            let fenced = self.fenced(renewed);
            self.metrics.member_fenced.set(i64::from(fenced));
            // Fenced but not gone: the apiserver is likely just slow for every member
            // at once, so the table is frozen as it was (no node let go, none taken)
            // until our renewal lands again or we leave.
            if fenced && !self.leaves(renewed) {
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

    /// Whether we drop out of our own table now (let go of every node), our last
    /// successful renewal sent at `renewed`: only well after we are fenced
    /// ([`kwok_members::handover::leaves`]).
    fn leaves(&self, renewed: Option<Instant>) -> bool {
        renewed.is_none_or(|r| {
            kwok_members::handover::leaves(Instant::now().saturating_duration_since(r), self.duration)
        })
    }

    /// Whether we must stop writing now, our last successful renewal sent at `renewed`.
    fn fenced(&self, renewed: Option<Instant>) -> bool {
        renewed.is_none_or(|r| {
            kwok_members::handover::fenced(Instant::now().saturating_duration_since(r), self.duration)
        })
    }

    /// Creates or renews our member Lease.
    async fn renew(&self, api: &Api<Lease>, name: &str) -> Result<(), kube::Error> {
        let now = MicroTime(Timestamp::now());
        let seconds = self.duration.as_secs() as i32;
        match api.get_opt(name).await? {
            Some(mut lease) => {
                lease.metadata.managed_fields = None;
                let spec = lease.spec.get_or_insert_default();
                if spec.holder_identity.as_deref() != Some(&self.me) {
                    spec.acquire_time = Some(now.clone());
                }
                spec.holder_identity = Some(self.me.clone());
                spec.lease_duration_seconds = Some(seconds);
                spec.renew_time = Some(now);
                api.replace(name, &PostParams::default(), &lease).await?;
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
                api.create(&PostParams::default(), &lease).await?;
            }
        }
        Ok(())
    }
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
            let seconds = spec.lease_duration_seconds.unwrap_or(0).max(0) as u64;
            let expires = spec.renew_time.as_ref()?.0 + Duration::from_secs(seconds);
            (expires > now).then(|| holder.to_owned())
        })
        .collect();
    live.sort_unstable();
    live.dedup();
    live
}

#[cfg(test)]
mod tests {
    use super::*;

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
