//! The simulator itself: a fault-free seed and faulted seeds are valid, a
//! seed's fault schedule replays, and a bug planted on purpose is found.

use cairn_sim::cluster::Plant;
use cairn_sim::run_seed;
use cairn_sim::Options;

fn options(seconds: u64) -> Options {
    Options {
        seconds,
        root: cairn_sim::run::default_root().join("tests"),
        ..Options::default()
    }
}

#[test]
fn a_fault_free_run_is_valid_and_acknowledges_writes() -> anyhow::Result<()> {
    let o = Options {
        faults: false,
        ..options(10)
    };
    let r = run_seed(1, &o)?;
    assert!(r.valid, "{r:#?}");
    assert!(r.faults.is_empty());
    assert!(
        r.acked_sends > 100,
        "only {} sends acknowledged",
        r.acked_sends
    );
    Ok(())
}

#[test]
fn seeds_under_every_fault_are_valid_and_their_schedule_replays() -> anyhow::Result<()> {
    let o = options(20);
    for seed in [3, 4] {
        let first = run_seed(seed, &o)?;
        assert!(first.valid, "{first:#?}");
        assert!(!first.faults.is_empty());
        assert!(first.acked_sends > 50, "{first:#?}");
        // The same seed injects the same faults at the same times.
        let again = run_seed(seed, &o)?;
        assert_eq!(first.faults, again.faults);
    }
    Ok(())
}

/// Nothing acknowledged may be lost: with the store acknowledging writes
/// before any fsync, power losses of a majority lose acknowledged records,
/// and some seed of the first 40 shows it.
#[test]
fn a_planted_ack_before_fsync_is_found() -> anyhow::Result<()> {
    let o = Options {
        plant: Plant::AckBeforeFsync,
        ..options(20)
    };
    for seed in 1..=40 {
        let r = run_seed(seed, &o)?;
        if !r.valid {
            eprintln!("found by seed {seed}: {:?} {:?}", r.anomalies, r.violations);
            return Ok(());
        }
    }
    anyhow::bail!("no seed of 1..=40 found the planted bug")
}
