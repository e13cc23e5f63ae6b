//! `--scale-out`: the IP slot this kwok holds, so members never hand out one pod IP twice.
//!
//! Pods on nodes without a podCIDR take addresses from `--cidr`, a pool every member
//! would otherwise fill from its lowest free address, unaware of the pods the others
//! created in the last few hundred milliseconds: three replicas gave 186 of 600 new pods
//! an address another pod had. So the pool is dealt into [`Stripe::SLOTS`] interleaved
//! stripes ([`Stripe`]), and a member hands out addresses only from the stripe of a slot
//! it holds: a Lease `kwok-ip-slot-<k>` in [`NAMESPACE`] (labelled [`SLOT_LABEL`]), taken
//! with a create or a conditional PUT, so two members never hold one slot. It is renewed
//! with the member Lease, and the member's write fence closes when it would expire (see
//! [`MemberLease`](super::MemberLease)): a member cut off long enough for its slot to
//! pass to another writes nothing more, and on its return hands out new addresses for
//! the pods it had not written yet ([`SharedIps`]).
//!
//! A member takes back the slot a Lease shows its identity holding (a restarted kwok's
//! pods have their addresses there), else the lowest slot with no Lease, or whose Lease
//! expired a margin ago. Every member still learns every `--cidr` address in use (pods
//! on nodes without a podCIDR are read whoever drives them), so the new holder of a
//! slot passes over the addresses its last holder gave out.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use tokio::time::Instant;
use tracing::{info, warn};

use super::{NAMESPACE, members};
use crate::{host::SharedIps, ipam::Stripe, metrics::Metrics};

/// The label (with value `"true"`) that marks IP-slot Leases.
pub const SLOT_LABEL: &str = "kwok.x-k8s.io/ip-slot";

/// How long past its expiry a slot's Lease waits before another member takes it: its
/// holder's fence closed at the expiry, by the same clock on one machine, and a write it
/// sent just before has landed by then.
const TAKE_OVER_MARGIN: Duration = Duration::from_secs(2);

/// The name of slot `slot`'s Lease.
pub fn slot_lease_name(slot: u32) -> String {
    format!("kwok-ip-slot-{slot}")
}

/// The IP slot this member holds, renewed with its member Lease.
pub struct IpSlot {
    api: Api<Lease>,
    me: String,
    duration: Duration,
    shared: Arc<Mutex<SharedIps>>,
    metrics: Arc<Metrics>,
    held: Option<Held>,
    /// Every slot was held at the last claim: said once, not at every tick.
    all_held: bool,
}

/// How a claim went.
enum Claimed {
    /// Slot `.0` is ours, its Lease as written (boxed: the other variants are empty).
    Slot(u32, Box<Lease>),
    /// Another member created or took the slot chosen first.
    Raced,
    /// Every slot is held by a live member.
    AllHeld,
}

/// A slot held: its Lease as our last write left it, and when that write was sent.
struct Held {
    slot: u32,
    lease: Lease,
    renewed: Instant,
}

impl IpSlot {
    /// Slots for member `me` through `api` (Leases in [`NAMESPACE`]), held for
    /// `duration` per renewal; the slot held is given to `shared`'s `--cidr` pool.
    pub fn new(
        api: Api<Lease>,
        me: String,
        duration: Duration,
        shared: Arc<Mutex<SharedIps>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.ip_slot.set(-1);
        Self {
            api,
            me,
            duration,
            shared,
            metrics,
            held: None,
            all_held: false,
        }
    }

    /// Renews the slot held, or claims one if none is; returns until when the slot held
    /// is surely ours (`None`: none held, nothing to fence by).
    pub async fn tick(&mut self) -> Option<Instant> {
        if let Some(held) = &mut self.held {
            let sent = Instant::now();
            match renew(&self.api, &self.me, held.slot, &held.lease).await {
                Ok(Some(lease)) => {
                    held.lease = lease;
                    held.renewed = sent;
                    return Some(sent + self.duration);
                }
                Ok(None) => {
                    warn!(
                        slot = held.slot,
                        "lost the IP slot to another kwok; claiming another"
                    );
                    self.held = None;
                    self.set(None);
                }
                Err(e) => {
                    warn!(slot = held.slot, error = %e, "failed to renew the IP slot");
                    return Some(held.renewed + self.duration);
                }
            }
        }
        let sent = Instant::now();
        match self.claim().await {
            Ok(Claimed::AllHeld) => {
                if !std::mem::replace(&mut self.all_held, true) {
                    warn!(
                        slots = Stripe::SLOTS,
                        "every IP slot is held: pods on nodes without a podCIDR wait until one is free"
                    );
                }
                None
            }
            Ok(Claimed::Slot(slot, lease)) => {
                self.all_held = false;
                info!(
                    slot,
                    "holding an IP slot: pod IPs from --cidr come from its stripe"
                );
                self.held = Some(Held {
                    slot,
                    lease: *lease,
                    renewed: sent,
                });
                self.set(Stripe::slot(slot));
                Some(sent + self.duration)
            }
            Ok(Claimed::Raced) => None,
            Err(e) => {
                warn!(error = %e, "failed to claim an IP slot; trying again");
                None
            }
        }
    }

    fn set(&self, stripe: Option<Stripe>) {
        self.metrics
            .ip_slot
            .set(stripe.map_or(-1, |s| i64::from(s.index())));
        self.shared.lock().expect("ip pool lock").set_slot(stripe);
    }

    /// Lists the slot Leases and takes the one [`choose`] picks.
    async fn claim(&self) -> Result<Claimed, kube::Error> {
        let listed = self
            .api
            .list(&ListParams::default().labels(&format!("{SLOT_LABEL}=true")))
            .await?;
        let now = Timestamp::now();
        let Some(choice) = choose(&listed.items, &self.me, now) else {
            return Ok(Claimed::AllHeld);
        };
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let spec = |acquired: Option<MicroTime>| LeaseSpec {
            holder_identity: Some(self.me.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: acquired.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        };
        let (slot, result) = match choice {
            Choice::Create(slot) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(slot_lease_name(slot)),
                        namespace: Some(NAMESPACE.to_owned()),
                        labels: Some([(SLOT_LABEL.to_owned(), "true".to_owned())].into()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec(None)),
                };
                (slot, self.api.create(&PostParams::default(), &lease).await)
            }
            Choice::Take(slot, lease) => {
                let mut lease = *lease;
                let ours = holder(&lease) == Some(self.me.as_str());
                let acquired = lease.spec.as_ref().and_then(|s| s.acquire_time.clone());
                lease.spec = Some(spec(ours.then_some(acquired).flatten()));
                lease.metadata.managed_fields = None;
                let name = slot_lease_name(slot);
                (
                    slot,
                    self.api.replace(&name, &PostParams::default(), &lease).await,
                )
            }
        };
        match result {
            Ok(mut lease) => {
                lease.metadata.managed_fields = None;
                Ok(Claimed::Slot(slot, Box::new(lease)))
            }
            // Another member created or took it between our list and our write.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Claimed::Raced),
            Err(e) => Err(e),
        }
    }
}

/// Renews slot `slot`'s Lease `lease` (a PUT, its resourceVersion the precondition);
/// after a conflict, reads it and keeps it if it still names us (an earlier PUT
/// landed unanswered). `Ok(None)`: another member holds it now, or it is gone.
async fn renew(api: &Api<Lease>, me: &str, slot: u32, lease: &Lease) -> Result<Option<Lease>, kube::Error> {
    let name = slot_lease_name(slot);
    let put = |mut lease: Lease| {
        lease.spec.get_or_insert_default().renew_time = Some(MicroTime(Timestamp::now()));
        lease.metadata.managed_fields = None;
        let api = api.clone();
        let name = name.clone();
        async move { api.replace(&name, &PostParams::default(), &lease).await }
    };
    match put(lease.clone()).await {
        Ok(lease) => return Ok(Some(lease)),
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
        Err(e) => return Err(e),
    }
    match api.get_opt(&name).await? {
        Some(current) if holder(&current) == Some(me) => match put(current).await {
            Ok(lease) => Ok(Some(lease)),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
            Err(e) => Err(e),
        },
        _ => Ok(None),
    }
}

/// A slot to claim.
#[derive(Debug, PartialEq)]
enum Choice {
    /// No Lease names it: create one.
    Create(u32),
    /// Its Lease is ours from before, or expired: take it over (a conditional PUT).
    Take(u32, Box<Lease>),
}

/// The slot to claim among `leases` (the slot Leases listed) at `now`, as member `me`:
/// the lowest one a Lease shows us holding, else the lowest free one (no Lease, or one
/// expired for [`TAKE_OVER_MARGIN`]); `None` when every slot is held.
fn choose(leases: &[Lease], me: &str, now: Timestamp) -> Option<Choice> {
    let mut by_slot: Vec<Option<&Lease>> = vec![None; Stripe::SLOTS as usize];
    for lease in leases {
        let slot = lease
            .metadata
            .name
            .as_deref()
            .and_then(|n| n.strip_prefix("kwok-ip-slot-"))
            .and_then(|k| k.parse::<u32>().ok())
            .filter(|&k| k < Stripe::SLOTS);
        if let Some(slot) = slot {
            by_slot[slot as usize] = Some(lease);
        }
    }
    let take = |slot: usize, lease: &Lease| Choice::Take(slot as u32, Box::new(lease.clone()));
    if let Some((slot, lease)) = by_slot
        .iter()
        .enumerate()
        .find_map(|(k, l)| l.filter(|l| holder(l) == Some(me)).map(|l| (k, l)))
    {
        return Some(take(slot, lease));
    }
    by_slot.iter().enumerate().find_map(|(slot, lease)| match lease {
        None => Some(Choice::Create(slot as u32)),
        Some(lease) if expired(lease, now) => Some(take(slot, lease)),
        Some(_) => None,
    })
}

fn holder(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()?
        .holder_identity
        .as_deref()
        .filter(|h| !h.is_empty())
}

/// Whether `lease` expired at least [`TAKE_OVER_MARGIN`] before `now` (one never
/// renewed, or without a holder, counts as expired).
fn expired(lease: &Lease, now: Timestamp) -> bool {
    match (holder(lease), members::expiry(lease)) {
        (Some(_), Some(expiry)) => expiry + TAKE_OVER_MARGIN <= now,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use kwok_engine::host::Host as _;

    use crate::{
        host::{Ips, RuntimeHost},
        ipam::Cidr,
        lease::stand_in::StandIn,
    };

    struct Member {
        slot: IpSlot,
        shared: Arc<Mutex<SharedIps>>,
        metrics: Arc<Metrics>,
    }

    fn member(apiserver: &StandIn, me: &str) -> Member {
        let metrics = Arc::new(Metrics::unregistered());
        let shared = SharedIps::scale_out(Cidr::parse("10.0.0.1/24").unwrap());
        let api = Api::namespaced(apiserver.client(), NAMESPACE);
        let slot = IpSlot::new(
            api,
            me.into(),
            Duration::from_secs(10),
            shared.clone(),
            metrics.clone(),
        );
        Member {
            slot,
            shared,
            metrics,
        }
    }

    impl Member {
        /// The address the next new pod gets.
        fn next_ip(&self, uid: &str) -> Result<String, String> {
            let mut ips = Ips::new(self.shared.clone(), "196.168.0.1".into());
            let mut host = RuntimeHost {
                now: Timestamp::UNIX_EPOCH,
                start: Timestamp::UNIX_EPOCH,
                node_name: "",
                node_ip: "196.168.0.1",
                node_port: 10250,
                ips: &mut ips,
                subject: ("n", uid),
                random: 0,
            };
            host.pod_ip().map_err(|e| e.pool)
        }
    }

    #[tokio::test]
    async fn members_should_claim_distinct_slots_renew_them_and_claim_another_once_theirs_is_taken() {
        let apiserver = StandIn::default();
        let (mut a, mut b) = (member(&apiserver, "kwok-a"), member(&apiserver, "kwok-b"));
        assert!(a.next_ip("early").unwrap_err().contains("holds no IP slot yet"));
        assert!(a.slot.tick().await.is_some());
        assert_eq!(apiserver.calls(), ["GET 200", "POST 201"], "listed, then created");
        assert!(b.slot.tick().await.is_some());
        assert_eq!(apiserver.calls(), ["GET 200", "POST 201"]);
        assert_eq!((a.metrics.ip_slot.get(), b.metrics.ip_slot.get()), (0, 1));
        assert_eq!(a.next_ip("p").unwrap(), "10.0.0.1");
        assert_eq!(b.next_ip("q").unwrap(), "10.0.1.1");
        // Renewed by one PUT each.
        a.slot.tick().await;
        assert_eq!(apiserver.calls(), ["PUT 200"]);
        // A busy apiserver: kept, fenced from the last renewal that landed.
        *apiserver.fail.lock().unwrap() = Some(503);
        assert!(a.slot.tick().await.is_some());
        assert_eq!(apiserver.calls(), ["PUT 503"]);
        assert_eq!(a.metrics.ip_slot.get(), 0);
        // A's slot went to another kwok while A was away: A claims the lowest free one.
        let name = slot_lease_name(0);
        let mut taken = apiserver.get(&name).unwrap();
        taken["spec"]["holderIdentity"] = json!("kwok-c");
        taken["metadata"]["resourceVersion"] = json!("50");
        apiserver.set(&name, Some(taken));
        assert!(a.slot.tick().await.is_some());
        assert_eq!(
            apiserver.calls(),
            ["PUT 409", "GET 200", "GET 200", "POST 201"],
            "refused, read (kwok-c's now), listed, slot 2 created"
        );
        assert_eq!(a.metrics.ip_slot.get(), 2);
        assert_eq!(a.next_ip("r").unwrap(), "10.0.2.1");
        // An earlier PUT that landed unanswered: the conflict reads the Lease, finds it
        // ours, and keeps it.
        let name = slot_lease_name(1);
        let mut ours = apiserver.get(&name).unwrap();
        ours["metadata"]["resourceVersion"] = json!("70");
        apiserver.set(&name, Some(ours));
        assert!(b.slot.tick().await.is_some());
        assert_eq!(apiserver.calls(), ["PUT 409", "GET 200", "PUT 200"]);
        assert_eq!(b.metrics.ip_slot.get(), 1);
    }

    #[tokio::test]
    async fn a_slot_held_by_a_live_member_should_be_passed_over() {
        let apiserver = StandIn::default();
        let mut a = member(&apiserver, "kwok-a");
        apiserver.set(
            &slot_lease_name(0),
            Some(
                json!({"metadata": {"name": slot_lease_name(0), "resourceVersion": "1"},
                "spec": {"holderIdentity": "kwok-z", "leaseDurationSeconds": 10,
                         "renewTime": Timestamp::now().to_string()}}),
            ),
        );
        assert!(a.slot.tick().await.is_some());
        assert_eq!(apiserver.calls(), ["GET 200", "POST 201"]);
        assert_eq!(a.metrics.ip_slot.get(), 1, "slot 0 is held: the next one");
    }

    fn lease(slot: u32, holder: &str, renewed_ago: u64, seconds: i32, now: Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(slot_lease_name(slot)),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                lease_duration_seconds: Some(seconds),
                renew_time: Some(MicroTime(now - Duration::from_secs(renewed_ago))),
                ..LeaseSpec::default()
            }),
        }
    }

    fn slot_of(choice: Option<Choice>) -> Option<(u32, bool)> {
        choice.map(|c| match c {
            Choice::Create(k) => (k, true),
            Choice::Take(k, _) => (k, false),
        })
    }

    #[test]
    fn a_member_should_take_the_lowest_free_slot() {
        let now: Timestamp = "2026-12-05T12:00:00Z".parse().unwrap();
        assert_eq!(slot_of(choose(&[], "me", now)), Some((0, true)));
        let held = [lease(0, "a", 1, 10, now), lease(2, "b", 1, 10, now)];
        assert_eq!(slot_of(choose(&held, "me", now)), Some((1, true)));
        // Expired, but not by the margin yet: still its holder's.
        let just_expired = [lease(0, "a", 11, 10, now), lease(1, "b", 1, 10, now)];
        assert_eq!(slot_of(choose(&just_expired, "me", now)), Some((2, true)));
        let long_expired = [lease(0, "a", 13, 10, now), lease(1, "b", 1, 10, now)];
        assert_eq!(slot_of(choose(&long_expired, "me", now)), Some((0, false)));
    }

    #[test]
    fn a_member_should_take_back_the_slot_it_holds_before_a_lower_free_one() {
        let now: Timestamp = "2026-12-05T12:00:00Z".parse().unwrap();
        let leases = [lease(0, "a", 100, 10, now), lease(5, "me", 100, 10, now)];
        assert_eq!(slot_of(choose(&leases, "me", now)), Some((5, false)));
    }

    #[test]
    fn no_slot_should_be_chosen_when_all_are_held_and_strangers_ignored() {
        let now: Timestamp = "2026-12-05T12:00:00Z".parse().unwrap();
        let mut leases: Vec<Lease> = (0..Stripe::SLOTS)
            .map(|k| lease(k, &format!("m{k}"), 1, 10, now))
            .collect();
        assert_eq!(choose(&leases, "me", now), None);
        // A Lease past the last slot, or not named as a slot's, changes nothing.
        leases.push(lease(Stripe::SLOTS, "x", 100, 10, now));
        let mut odd = lease(0, "x", 100, 10, now);
        odd.metadata.name = Some("kwok-ip-slot-zero".into());
        leases.push(odd);
        assert_eq!(choose(&leases, "me", now), None);
    }
}
