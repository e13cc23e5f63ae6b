//! The lease worker's async loop: it owns the client and the channels, reads the clock
//! and the random source, and drives the I/O-free [`Leases`] with them.

use std::{sync::Arc, time::Duration};

use kube::Client;
use rand::{SeedableRng, rngs::SmallRng};
use tokio::{sync::mpsc, time::Instant};

use super::{
    LeaseMsg, NodeNews, OnNodeNews,
    plan::Plan,
    pressure::PressureGauge,
    requests::Requests,
    state::{Command, Done, Leases, Ours},
};
use crate::{
    flags::{LeaseEncoding, LeaseManagedFields},
    metrics::Metrics,
    shard::Now,
    wheel::Alarm,
};

/// How the worker holds its Leases.
#[derive(Debug, Clone, Copy)]
pub struct LeaseOptions {
    /// The Leases' duration.
    pub duration: Duration,
    /// Requests in flight at most while renewals go out on time (up to 64 times as many
    /// as they run late).
    pub parallelism: usize,
    /// How renewals are encoded.
    pub encoding: LeaseEncoding,
    /// What renewals do with a Lease's `managedFields`.
    pub managed_fields: LeaseManagedFields,
    /// `--scale-out`: hold only the Leases of the nodes the member table deals us (the
    /// members come as [`LeaseMsg::Members`]).
    pub scale_out: bool,
}

/// The worker.
pub struct LeaseWorker {
    requests: Arc<Requests>,
    /// `--scale-out`: hold only the nodes the member table deals us.
    scale_out: bool,
    parallelism: usize,
    on_news: OnNodeNews,
    pressure: PressureGauge,
}

impl LeaseWorker {
    /// A worker renewing as `holder`, as `options` say.
    pub fn new(
        client: Client,
        holder: String,
        options: LeaseOptions,
        metrics: Arc<Metrics>,
        on_news: OnNodeNews,
    ) -> Self {
        Self {
            requests: Arc::new(Requests {
                client,
                holder,
                duration: options.duration,
                encoding: options.encoding,
                managed_fields: options.managed_fields,
                clearing_refused: Default::default(),
                metrics,
                // Leases are renewed every quarter duration.
                handover: options.scale_out.then_some(options.duration / 4),
            }),
            scale_out: options.scale_out,
            parallelism: options.parallelism,
            on_news,
            pressure: PressureGauge::default(),
        }
    }

    /// How far behind renewals are: other writers hold back by it.
    pub fn pressure(&self) -> PressureGauge {
        self.pressure.clone()
    }

    /// Runs until `rx` closes.
    pub async fn run(self, mut rx: mpsc::UnboundedReceiver<LeaseMsg>) {
        // Results of the renewals in flight, which the slots bound; a renewal task
        // must never wait to report, or its slot would stay taken.
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let requests = self.requests.clone();
        let ours = requests.list_ours().await;
        let metrics = requests.metrics.clone();
        let now = Now::read();
        let ours = ours
            .into_iter()
            .map(|(name, lease)| (name, Ours::listed(lease, now)))
            .collect();
        let plan = self
            .scale_out
            .then(|| Plan::new(requests.holder.clone(), now.mono));
        let mut leases = Leases::new(
            requests.duration,
            self.parallelism,
            metrics.clone(),
            ours,
            now.mono,
            plan,
        );
        let mut rng = SmallRng::from_rng(&mut rand::rng());
        let mut alarm = Alarm::new();
        let mut out = Vec::new();
        loop {
            let (clock, deadline) = leases.next_deadline();
            alarm.arm(clock, deadline);
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => leases.message(msg, Instant::now()),
                    None => break,
                },
                () = alarm.fired(), if alarm.is_armed() => leases.fire_due(Instant::now(), &mut out),
                Some(done) = done_rx.recv() => leases.finished(done, Instant::now(), &mut rng, &mut out),
            }
            self.pressure.set(leases.pressure());
            for command in out.drain(..) {
                match command {
                    Command::Send {
                        name,
                        generation,
                        uid,
                        fresh,
                        lease,
                    } => {
                        let (requests, done) = (requests.clone(), done_tx.clone());
                        tokio::spawn(async move {
                            let sent = Instant::now();
                            let result = match lease {
                                Some(lease) => requests.put(&name, lease).await,
                                None => requests.acquire(&name, &uid, fresh).await,
                            };
                            let (ended, lease) = result.split();
                            let _ = done.send(Done {
                                name,
                                generation,
                                sent,
                                ended,
                                lease,
                            });
                        });
                    }
                    Command::Ownership(ownership) => (self.on_news)(NodeNews::Ownership(ownership)),
                    Command::Dealt(dealt) => (self.on_news)(NodeNews::Dealt(dealt)),
                }
            }
            metrics.leases_held.set(leases.owned as i64);
        }
    }
}
