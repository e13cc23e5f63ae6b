//! Sends many requests at a target rate with a cap on those in flight, retrying
//! throttling (429) and transient failures, and counting every error by kind.

use std::{
    future::Future,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::measure::Recorder;

/// Attempts per request before it counts as failed.
const MAX_ATTEMPTS: u32 = 12;
/// Longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest `Retry-After` honoured: a server asking for more is asked again sooner.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded (possibly after retries).
    Done,
    /// It failed for good (counted in the recorder's errors).
    Failed,
}

/// Rate limiter, in-flight cap and error accounting shared by every phase of a run.
pub struct Driver {
    limiter: DefaultDirectRateLimiter,
    concurrency: usize,
    recorder: Arc<Mutex<Recorder>>,
    cancel: CancellationToken,
}

impl Driver {
    /// A driver sending at most `rate` requests per second, `concurrency` at once.
    pub fn new(
        rate: u32,
        concurrency: u32,
        recorder: Arc<Mutex<Recorder>>,
        cancel: CancellationToken,
    ) -> Self {
        let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
        // A burst of a tenth of a second keeps the rate smooth but lets a slow tick catch up.
        let burst = NonZeroU32::new(rate.get() / 10).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            concurrency: concurrency.max(1) as usize,
            recorder,
            cancel,
        }
    }

    /// The run's cancellation (Ctrl-C).
    pub fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Runs `op` for every item at the target rate; stops early when cancelled.
    /// Returns how many succeeded (so far, when cancelled).
    pub async fn each<T, F, Fut>(&self, items: impl IntoIterator<Item = T>, op: F) -> u64
    where
        F: Fn(T) -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let work = futures::stream::iter(items)
            .map(|item| {
                let fut = op(item);
                async move {
                    self.limiter.until_ready().await;
                    fut.await
                }
            })
            .buffer_unordered(self.concurrency);
        let mut ok = 0u64;
        let count = work.for_each(|o| {
            ok += u64::from(o == Outcome::Done);
            std::future::ready(())
        });
        tokio::select! {
            () = count => {}
            () = self.cancel.cancelled() => {}
        }
        ok
    }

    /// Sends one request, retrying what is worth retrying. `what` names it in error
    /// kinds (`create pod`). A create answered 409 after a retry counts as done: the
    /// earlier attempt made it.
    pub async fn call<T, F, Fut>(&self, what: &str, f: F) -> Outcome
    where
        F: Fn() -> Fut,
        Fut: Future<Output = kube::Result<T>>,
    {
        let mut backoff = Duration::from_millis(50);
        for attempt in 1..=MAX_ATTEMPTS {
            let err = match f().await {
                Ok(_) => return Outcome::Done,
                Err(e) => e,
            };
            let kind = Kind::of(&err);
            let already = attempt > 1 && matches!(kind, Kind::Status(409) | Kind::Status(404));
            if already {
                self.count(format!(
                    "{what}: {} after retry (earlier attempt succeeded)",
                    kind.label()
                ));
                return Outcome::Done;
            }
            // What a delete wants is for the object to be gone.
            if what.starts_with("delete") && kind == Kind::Status(404) {
                return Outcome::Done;
            }
            if !kind.retryable() || attempt == MAX_ATTEMPTS || self.cancel.is_cancelled() {
                tracing::debug!(what, error = %err, "request failed");
                self.count(format!("{what}: failed {}", kind.label()));
                return Outcome::Failed;
            }
            self.count(format!("{what}: retried {}", kind.label()));
            tokio::select! {
                () = tokio::time::sleep(backoff.max(retry_after(&err))) => {}
                () = self.cancel.cancelled() => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        unreachable!("the last attempt returns")
    }

    fn count(&self, kind: String) {
        self.recorder.lock().expect("recorder lock").error(kind);
    }
}

/// How long the server asked us to wait (`details.retryAfterSeconds` of a 429 or 5xx
/// `Status`, which the apiserver sends with its `Retry-After` header), at most
/// [`MAX_RETRY_AFTER`]; zero when it did not say.
fn retry_after(err: &kube::Error) -> Duration {
    let secs = match err {
        kube::Error::Api(s) => s.details.as_ref().map_or(0, |d| d.retry_after_seconds),
        _ => 0,
    };
    Duration::from_secs(u64::from(secs)).min(MAX_RETRY_AFTER)
}

/// What went wrong with a request, for retry decisions and error kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The apiserver answered with this status code.
    Status(u16),
    /// Connection or protocol trouble before an answer.
    Transport,
    /// Anything else (bad request body, decoding).
    Other,
}

impl Kind {
    /// Classifies a client error.
    pub fn of(err: &kube::Error) -> Self {
        match err {
            kube::Error::Api(s) => Kind::Status(s.code),
            kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
                Kind::Transport
            }
            _ => Kind::Other,
        }
    }

    /// Throttling, server trouble and lost connections pass; the rest will not.
    pub fn retryable(self) -> bool {
        match self {
            Kind::Status(code) => code == 429 || code >= 500,
            Kind::Transport => true,
            Kind::Other => false,
        }
    }

    fn label(self) -> String {
        match self {
            Kind::Status(code) => format!("HTTP {code}"),
            Kind::Transport => "transport".into(),
            Kind::Other => "other".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status::failure("x", "y").with_code(code)))
    }

    fn driver() -> (Driver, Arc<Mutex<Recorder>>) {
        let rec = Arc::new(Mutex::new(Recorder::new()));
        (Driver::new(1000, 4, rec.clone(), CancellationToken::new()), rec)
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_requests_should_be_retried_and_counted() {
        let (d, rec) = driver();
        let calls = AtomicU32::new(0);
        let out = d
            .call("create pod", || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(api_error(429))
                } else {
                    Ok(())
                }
            })
            .await;
        assert_eq!(out, Outcome::Done);
        assert_eq!(rec.lock().unwrap().errors()["create pod: retried HTTP 429"], 2);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_should_be_honoured_before_the_next_attempt() {
        let (d, _) = driver();
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let out = d
            .call("create pod", || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    // As the apiserver sends it (with a `Retry-After: 3` header).
                    let status: kube::core::Status = serde_json::from_value(serde_json::json!({
                        "status": "Failure", "reason": "TooManyRequests", "message": "slow down",
                        "code": 429, "details": {"retryAfterSeconds": 3},
                    }))
                    .unwrap();
                    Err(kube::Error::Api(Box::new(status)))
                } else {
                    Ok(())
                }
            })
            .await;
        assert_eq!(out, Outcome::Done);
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn conflict_after_retry_should_count_as_done() {
        let (d, rec) = driver();
        let calls = AtomicU32::new(0);
        let out = d
            .call("create pod", || async {
                Err::<(), _>(api_error(if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    503
                } else {
                    409
                }))
            })
            .await;
        assert_eq!(out, Outcome::Done);
        assert_eq!(rec.lock().unwrap().errors().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn client_errors_should_fail_at_once() {
        let (d, rec) = driver();
        let calls = AtomicU32::new(0);
        let out = d
            .call("create node", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(api_error(422))
            })
            .await;
        assert_eq!((out, calls.load(Ordering::SeqCst)), (Outcome::Failed, 1));
        assert_eq!(rec.lock().unwrap().errors()["create node: failed HTTP 422"], 1);
    }

    #[tokio::test(start_paused = true)]
    async fn each_should_run_every_item_and_count_successes() {
        let (d, _) = driver();
        let ok = d
            .each(0..50u32, |i| async move {
                if i % 5 == 0 {
                    Outcome::Failed
                } else {
                    Outcome::Done
                }
            })
            .await;
        assert_eq!(ok, 40);
    }

    #[tokio::test]
    async fn cancelled_each_should_return_the_successes_so_far() {
        let rec = Arc::new(Mutex::new(Recorder::new()));
        let cancel = CancellationToken::new();
        // 10/s with a burst of 1: a few items pass before the cancel.
        let d = Driver::new(10, 1, rec, cancel.clone());
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(350)).await;
            stop.cancel();
        });
        let ok = d.each(0..100u32, |_| async { Outcome::Done }).await;
        assert!(ok > 0 && ok < 100, "{ok}");
    }
}
