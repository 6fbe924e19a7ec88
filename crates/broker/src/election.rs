//! When the election driver (`tasks::election_loop`) starts an election in
//! a partition group: a pure function of what the node sees and how long
//! ago things happened, so that its rules are tested without a cluster.

use std::time::Duration;

use crate::lease::PARTITION_ELECTION_TIMEOUT_MAX_MS;

/// A replica that handled a leader's message within this window does not
/// stand: that leader's lease may still count on it (`lease.rs`).
pub(crate) const LEADER_CONTACT_WINDOW: Duration =
    Duration::from_millis(PARTITION_ELECTION_TIMEOUT_MAX_MS);

/// What this node sees of one group in which it is a voter, not the leader.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ElectionView {
    /// A live node claims leadership of the group's current term (heartbeats).
    pub claimed: bool,
    /// openraft names a live leader other than this node, in a term younger
    /// than a second (a new leader not in heartbeats yet).
    pub fresh_leader: bool,
    /// How long ago this replica last handled a leader's message, if ever.
    pub since_leader_contact: Option<Duration>,
    /// How long the group has been seen without a leader, if it was at the
    /// last look.
    pub missing_for: Option<Duration>,
    /// This replica's wait before it stands (by its slot, with jitter).
    pub delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElectionStep {
    /// A leader is there, or may still hold its lease: no wait runs.
    LeaderPresent,
    /// No leader yet for `delay`: wait (from now, if it just went missing).
    Wait,
    /// No leader for `delay`: stand (pre-vote first).
    Elect,
}

/// The driver's decision for one group. openraft's candidate votes for
/// itself without looking at its own refusal window, so the rule that a
/// replica which acknowledged a leader within [`LEADER_CONTACT_WINDOW`]
/// does not help replace it lives here.
pub(crate) fn election_step(v: &ElectionView) -> ElectionStep {
    let heard = v
        .since_leader_contact
        .is_some_and(|age| age < LEADER_CONTACT_WINDOW);
    if v.claimed || v.fresh_leader || heard {
        return ElectionStep::LeaderPresent;
    }
    match v.missing_for {
        Some(missing) if missing >= v.delay => ElectionStep::Elect,
        _ => ElectionStep::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// No leader claimed or known, none heard from for a long time, missing
    /// for longer than the delay: stands.
    fn leaderless() -> ElectionView {
        ElectionView {
            claimed: false,
            fresh_leader: false,
            since_leader_contact: Some(10_000 * MS),
            missing_for: Some(400 * MS),
            delay: 300 * MS,
        }
    }

    #[test]
    fn a_replica_stands_only_after_its_delay_without_a_leader() {
        assert_eq!(election_step(&leaderless()), ElectionStep::Elect);
        let just_missing = ElectionView {
            missing_for: None,
            ..leaderless()
        };
        assert_eq!(election_step(&just_missing), ElectionStep::Wait);
        let early = ElectionView {
            missing_for: Some(299 * MS),
            ..leaderless()
        };
        assert_eq!(election_step(&early), ElectionStep::Wait);
        let never_heard = ElectionView {
            since_leader_contact: None,
            ..leaderless()
        };
        assert_eq!(election_step(&never_heard), ElectionStep::Elect);
    }

    /// Reliability finding 18 (c): a replica that handled the leader's
    /// message within the window does not stand, however long heartbeats
    /// have been missing (its node may be cut off from the heartbeats but
    /// not from the leader, whose lease counts on this replica).
    #[test]
    fn a_replica_that_heard_the_leader_within_the_window_does_not_stand() {
        for age in [0, 100, 399, 499] {
            let v = ElectionView {
                since_leader_contact: Some(age * MS),
                missing_for: Some(10_000 * MS),
                ..leaderless()
            };
            assert_eq!(
                election_step(&v),
                ElectionStep::LeaderPresent,
                "heard {age} ms ago"
            );
        }
        let v = ElectionView {
            since_leader_contact: Some(LEADER_CONTACT_WINDOW),
            ..leaderless()
        };
        assert_eq!(election_step(&v), ElectionStep::Elect);
    }

    /// The window covers the leader's lease with margin (`lease.rs`).
    #[test]
    fn the_contact_window_outlasts_the_partition_lease() {
        assert!(crate::lease::PARTITION_LEASE < LEADER_CONTACT_WINDOW);
    }

    #[test]
    fn a_claimed_or_fresh_leader_stops_the_wait() {
        for v in [
            ElectionView {
                claimed: true,
                ..leaderless()
            },
            ElectionView {
                fresh_leader: true,
                ..leaderless()
            },
        ] {
            assert_eq!(election_step(&v), ElectionStep::LeaderPresent);
        }
    }
}
