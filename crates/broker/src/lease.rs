//! Leader leases and the election timings they depend on, in one place.
//!
//! A leader serves reads (and the group coordinator answers) without a
//! round trip while a quorum acknowledged it recently: its *lease*. That is
//! safe only while no other leader can exist, and that rests on voters: a
//! follower refuses to vote for another candidate for `refusal window`
//! after it last heard from the leader (openraft: the follower's lease,
//! `election_timeout_max`). The leader measures its lease from when it
//! *sent* the acknowledged message, the follower its window from when it
//! *received* it, so the follower's window always ends later in real time,
//! as long as both clocks run at the same rate. The margin below covers
//! clocks that do not (drift, a stalled thread measuring late): a leader's
//! lease is a fifth shorter than the window it relies on, so a follower's
//! clock may run up to 25% fast before the two can overlap.
//!
//! Two more holes a lease has in openraft, closed by Cairn:
//! - openraft resets a follower's window when the process starts: a voter
//!   restarted within a leader's lease would vote at once. Cairn's
//!   internal RPC refuses vote requests for [`VOTE_HOLD_AFTER_START`].
//! - a candidate votes for itself without looking at its own window: a
//!   follower that heard from the leader a moment ago could elect itself
//!   with one other vote. Cairn's election driver starts no election in a
//!   group whose leader was heard from within the window
//!   (`election.rs`).

use std::time::Duration;

/// Partition groups: the refusal window, openraft's `election_timeout_max`.
pub(crate) const PARTITION_ELECTION_TIMEOUT_MAX_MS: u64 = 500;
pub(crate) const PARTITION_ELECTION_TIMEOUT_MIN_MS: u64 = 400;
/// Partition groups: a leader's lease.
pub(crate) const PARTITION_LEASE_MS: u64 = PARTITION_ELECTION_TIMEOUT_MAX_MS * 4 / 5;
pub(crate) const PARTITION_LEASE: Duration = Duration::from_millis(PARTITION_LEASE_MS);
/// A partition leader renews its lease before a read or write when the
/// last quorum acknowledgement is older than this.
pub(crate) const PARTITION_LEASE_RENEW_AFTER: Duration = Duration::from_millis(250);

/// The metadata group runs openraft's own election timers: a follower may
/// call an election after `election_timeout_min` of silence, so the
/// coordinator's lease is measured against that, not the maximum.
pub(crate) const META_ELECTION_TIMEOUT_MIN_MS: u64 = 600;
pub(crate) const META_ELECTION_TIMEOUT_MAX_MS: u64 = 900;
pub(crate) const META_HEARTBEAT_MS: u64 = 100;
/// The metadata leader's lease: the group coordinator answers only within it.
pub(crate) const META_LEASE_MS: u64 = META_ELECTION_TIMEOUT_MIN_MS * 4 / 5;
pub(crate) const META_LEASE: Duration = Duration::from_millis(META_LEASE_MS);

/// After the process starts, vote requests are refused this long: the
/// longest refusal window of any group.
pub(crate) const VOTE_HOLD_AFTER_START: Duration = Duration::from_millis(max(
    PARTITION_ELECTION_TIMEOUT_MAX_MS,
    META_ELECTION_TIMEOUT_MAX_MS,
));

const fn max(a: u64, b: u64) -> u64 {
    if a > b {
        a
    } else {
        b
    }
}

/// Clock margin every lease keeps below the window it relies on.
const MARGIN_PERCENT: u64 = 20;

// The relations the leases rely on, checked when the node is compiled.
const _: () = {
    assert!(PARTITION_LEASE_MS * 100 <= PARTITION_ELECTION_TIMEOUT_MAX_MS * (100 - MARGIN_PERCENT));
    assert!(META_LEASE_MS * 100 <= META_ELECTION_TIMEOUT_MIN_MS * (100 - MARGIN_PERCENT));
    assert!(PARTITION_ELECTION_TIMEOUT_MIN_MS <= PARTITION_ELECTION_TIMEOUT_MAX_MS);
    assert!(META_ELECTION_TIMEOUT_MIN_MS <= META_ELECTION_TIMEOUT_MAX_MS);
    // A lease is renewed before it lapses, and heartbeats keep the
    // metadata leader's lease fresh several times over.
    assert!(PARTITION_LEASE_RENEW_AFTER.as_millis() < PARTITION_LEASE_MS as u128);
    assert!(META_HEARTBEAT_MS * 3 <= META_LEASE_MS);
    assert!(VOTE_HOLD_AFTER_START.as_millis() >= PARTITION_ELECTION_TIMEOUT_MAX_MS as u128);
    assert!(VOTE_HOLD_AFTER_START.as_millis() >= META_ELECTION_TIMEOUT_MAX_MS as u128);
};

/// Whether a leader whose quorum last acknowledged a message sent at
/// `acked` still holds its lease of `lease`. A sole voter is its own quorum.
pub(crate) fn held(sole_voter: bool, acked: Option<std::time::Duration>, lease: Duration) -> bool {
    sole_voter || acked.is_some_and(|age| age < lease)
}
