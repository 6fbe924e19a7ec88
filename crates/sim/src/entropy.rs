//! The simulator's entropy: every random choice of a simulated run comes
//! from its seed.
//!
//! ```text
//!  std's HashMap keys ─┐
//!  rand::rng(), rand::random (openraft's election timeouts, ids) ─┼─► getrandom(2) ─► this file
//!  tokio's scheduler and select! seed ─┘        seeded thread: splitmix64(seed)
//!                                               any other thread: the kernel
//! ```
//!
//! This library defines the C symbol `getrandom`, so the binary's calls to
//! it (std's, the `getrandom` crate's) come here instead of to libc. On a
//! thread that [`seed_this_thread`] seeded, the bytes are a stream derived
//! from the seed; anywhere else they are the kernel's. A run executes on a
//! fresh thread seeded first, so its HashMaps iterate, its Raft elections
//! time out and its tasks are picked in the same order every time.

use std::cell::Cell;

thread_local! {
    static STREAM: Cell<Option<u64>> = const { Cell::new(None) };
}

/// From now on this thread's randomness is the stream of `seed`.
pub fn seed_this_thread(seed: u64) {
    STREAM.with(|s| s.set(Some(seed ^ 0x5ee0_5ee0_5ee0_5ee0)));
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `getrandom(2)` as libc declares it.
///
/// # Safety
/// `buf` must be valid for writes of `len` bytes (the caller's contract
/// with libc).
#[no_mangle]
pub unsafe extern "C" fn getrandom(
    buf: *mut libc::c_void,
    len: libc::size_t,
    flags: libc::c_uint,
) -> libc::ssize_t {
    let seeded = STREAM.try_with(Cell::get).ok().flatten();
    let Some(mut state) = seeded else {
        // SAFETY: the caller's buffer, passed on as it came.
        return unsafe { libc::syscall(libc::SYS_getrandom, buf, len, flags) as libc::ssize_t };
    };
    let out = buf.cast::<u8>();
    let mut i = 0;
    while i < len {
        let word = splitmix64(&mut state).to_le_bytes();
        for b in word.iter().take(len - i) {
            // SAFETY: i < len, within the caller's buffer.
            unsafe { out.add(i).write(*b) };
            i += 1;
        }
    }
    let _ = STREAM.try_with(|s| s.set(Some(state)));
    len as libc::ssize_t
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    fn order_on_a_seeded_thread(seed: u64) -> (Vec<u32>, u64) {
        std::thread::spawn(move || {
            super::seed_this_thread(seed);
            let m: HashMap<u32, ()> = (0..64).map(|k| (k, ())).collect();
            (m.keys().copied().collect(), rand::random::<u64>())
        })
        .join()
        .unwrap()
    }

    #[test]
    fn a_seeded_thread_iterates_and_draws_the_same_every_time() {
        assert_eq!(order_on_a_seeded_thread(7), order_on_a_seeded_thread(7));
        assert_ne!(order_on_a_seeded_thread(7), order_on_a_seeded_thread(8));
    }
}
