//! Which failures are retried, and how long to wait between attempts.
//!
//! Transient failures are retried with exponential backoff (by default 50 ms
//! doubling up to 1 s, with up to 25 % random reduction so that concurrent
//! callers spread out) until a deadline (30 s by default) measured from the
//! first attempt. Failures that are the caller's fault are returned at once.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use cairn_proto::v1::ErrorCode;

use crate::ClientError;

/// Backoff and deadline for retrying transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait before the first retry.
    pub initial_backoff: Duration,
    /// Upper bound of the (doubling) wait.
    pub max_backoff: Duration,
    /// No retry starts later than this after the first attempt.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            deadline: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The un-jittered wait after failed attempt number `retry` (0-based):
    /// `initial_backoff * 2^retry`, capped at `max_backoff`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// What the retry loop does with a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Return the error to the caller.
    Fail,
    /// Wait and try the same target again.
    Retry,
    /// The target is probably wrong (leader moved, node down): learn the
    /// current leader, then retry.
    Refresh,
}

/// Classifies a failed attempt.
///
/// - `NOT_LEADER`, `LEADER_NOT_AVAILABLE`, `REQUEST_TIMED_OUT`,
///   `STORAGE_ERROR`, `NOT_COORDINATOR` and transport failures: refresh the routing and retry.
/// - `NOT_ENOUGH_REPLICAS`: retry (the replicas may come back).
/// - everything else (unknown topic/partition, message too large, corrupt
///   message, invalid argument/config/replication factor, topic exists,
///   offset out of range, out-of-order sequence, fenced producer epoch,
///   cluster mismatch,
///   internal): fail.
pub(crate) fn classify(err: &ClientError) -> Disposition {
    match err {
        ClientError::Server { code, .. } => match code {
            ErrorCode::NotLeader
            | ErrorCode::LeaderNotAvailable
            | ErrorCode::RequestTimedOut
            | ErrorCode::StorageError
            | ErrorCode::NotCoordinator => Disposition::Refresh,
            ErrorCode::NotEnoughReplicas => Disposition::Retry,
            ErrorCode::Unspecified
            | ErrorCode::UnknownTopic
            | ErrorCode::UnknownPartition
            | ErrorCode::MessageTooLarge
            | ErrorCode::CorruptMessage
            | ErrorCode::TopicAlreadyExists
            | ErrorCode::InvalidArgument
            | ErrorCode::OffsetOutOfRange
            | ErrorCode::InvalidConfig
            | ErrorCode::ClusterMismatch
            | ErrorCode::Internal
            | ErrorCode::InvalidReplicationFactor
            | ErrorCode::OutOfOrderSequence
            | ErrorCode::InvalidProducerEpoch
            | ErrorCode::UnknownMemberId
            | ErrorCode::IllegalGeneration
            | ErrorCode::RebalanceInProgress
            | ErrorCode::InconsistentGroupProtocol
            | ErrorCode::GroupNotEmpty
            | ErrorCode::UnknownGroup
            | ErrorCode::InvalidSessionTimeout
            | ErrorCode::UnknownNode
            | ErrorCode::NodeInUse
            | ErrorCode::Unauthorized
            | ErrorCode::Unauthenticated => Disposition::Fail,
        },
        ClientError::Transport { .. } => Disposition::Refresh,
        ClientError::NoBootstrap
        | ClientError::InvalidAddress { .. }
        | ClientError::Tls(_)
        | ClientError::InvalidConfig(_)
        | ClientError::Rpc { .. }
        | ClientError::RetriesExhausted { .. }
        | ClientError::Record(_)
        | ClientError::Protocol(_) => Disposition::Fail,
    }
}

/// Retry state of one call: counts attempts and hands out waits until the
/// deadline.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    start: Instant,
    deadline: Instant,
    retries: u32,
    rng: u64,
}

impl Backoff {
    /// Starts a call now, with `policy.deadline` from now.
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        let start = Instant::now();
        Self::until(policy, start, start + policy.deadline)
    }

    /// Starts a call at `start` that may retry until `deadline`.
    pub(crate) fn until(policy: RetryPolicy, start: Instant, deadline: Instant) -> Self {
        let seed = RandomState::new().build_hasher().finish() | 1;
        Backoff {
            policy,
            start,
            deadline,
            retries: 0,
            rng: seed,
        }
    }

    /// The instant after which no retry starts.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Attempts made so far (the failed ones handed to `next_delay` plus the
    /// one in progress).
    pub(crate) fn attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// The wait before the next attempt, or `None` if the deadline has
    /// passed. The wait never extends beyond the deadline, so the last
    /// attempt starts at it at the latest.
    pub(crate) fn next_delay(&mut self, now: Instant) -> Option<Duration> {
        if now >= self.deadline {
            return None;
        }
        let base = self.policy.backoff(self.retries);
        self.retries = self.retries.saturating_add(1);
        let jittered = jitter(base, self.next_random());
        Some(jittered.min(self.deadline - now))
    }

    /// The error to return once retries are exhausted.
    pub(crate) fn exhausted(&self, last: ClientError, now: Instant) -> ClientError {
        ClientError::RetriesExhausted {
            attempts: self.attempts(),
            elapsed: now.saturating_duration_since(self.start),
            last: Box::new(last),
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: plenty for spreading out retries.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// Reduces `base` by 0-25 % according to `random`.
fn jitter(base: Duration, random: u64) -> Duration {
    let percent = 75 + (random % 26) as u32;
    base * percent / 100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(0), Duration::from_millis(50));
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(4), Duration::from_millis(800));
        assert_eq!(p.backoff(5), Duration::from_secs(1));
        assert_eq!(p.backoff(31), Duration::from_secs(1));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        for r in 0..200u64 {
            let d = jitter(
                Duration::from_millis(1000),
                r.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            );
            assert!(d >= Duration::from_millis(750) && d <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn delays_stop_at_deadline() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            deadline: Duration::from_secs(1),
        };
        let start = Instant::now();
        let mut b = Backoff::until(policy, start, start + policy.deadline);
        let mut now = start;
        let mut total = Duration::ZERO;
        let mut n = 0;
        while let Some(d) = b.next_delay(now) {
            assert!(d <= Duration::from_millis(400));
            now += d;
            total += d;
            n += 1;
            assert!(n < 100, "must terminate");
        }
        assert_eq!(
            total,
            Duration::from_secs(1),
            "the last wait is clipped to the deadline"
        );
        assert_eq!(b.attempts(), n + 1);
        let err = b.exhausted(ClientError::Protocol("x".into()), now);
        assert!(matches!(err, ClientError::RetriesExhausted { attempts, .. } if attempts == n + 1));
    }

    #[test]
    fn classification() {
        let server = |code| ClientError::server(code, "m");
        assert_eq!(
            classify(&server(ErrorCode::NotLeader)),
            Disposition::Refresh
        );
        assert_eq!(
            classify(&server(ErrorCode::LeaderNotAvailable)),
            Disposition::Refresh
        );
        assert_eq!(
            classify(&server(ErrorCode::RequestTimedOut)),
            Disposition::Refresh
        );
        assert_eq!(
            classify(&server(ErrorCode::NotEnoughReplicas)),
            Disposition::Retry
        );
        for code in [
            ErrorCode::UnknownTopic,
            ErrorCode::UnknownPartition,
            ErrorCode::MessageTooLarge,
            ErrorCode::CorruptMessage,
            ErrorCode::TopicAlreadyExists,
            ErrorCode::InvalidArgument,
            ErrorCode::InvalidConfig,
            ErrorCode::InvalidReplicationFactor,
            ErrorCode::OutOfOrderSequence,
            ErrorCode::InvalidProducerEpoch,
            ErrorCode::OffsetOutOfRange,
            ErrorCode::Internal,
            ErrorCode::Unspecified,
        ] {
            assert_eq!(classify(&server(code)), Disposition::Fail, "{code:?}");
            assert!(!server(code).is_retriable());
        }
        let transport = ClientError::Transport {
            addr: "a:1".into(),
            message: "refused".into(),
        };
        assert_eq!(classify(&transport), Disposition::Refresh);
        assert!(transport.is_retriable());
        let rpc = ClientError::Rpc {
            addr: "a:1".into(),
            code: tonic::Code::ResourceExhausted,
            message: "too big".into(),
        };
        assert_eq!(classify(&rpc), Disposition::Fail);
    }
}
