//! `chaos`: deterministic simulations of a Fleetcore cluster under faults,
//! and the checkers that judge what the clients saw.
//!
//! Owns: the turmoil harness that runs whole nodes ([`sim`]: every host runs
//! `fleetcore::start`/`serve` over [`sim::SimIo`], turmoil's network with a simulated
//! clock and seeded entropy), seeded so that a seed replays exactly (its simulated
//! MQTT devices use the broker's test client, `fleetcore_broker::testing`; its
//! backends call the HTTP API); the recorded client history ([`history`]); and the checkers ([`check`]): shadow
//! versions per key (no acknowledged update lost, duplicated or reordered; reads never
//! go back), linearizability per shadow, registry writes, one entry per log index
//! on every replica (state machine safety), identical replicas after healing; and the drill against real processes ([`drill`]).
//! Uses: fleetcore (the node), fleetcore-raft, fleetcore-storage, fleetcore-model,
//! fleetcore-broker (its `testing` client), turmoil.
//! Must not be used by the `fleetcore` binary: turmoil switches on tokio's test-util.
//!
//! Replay one seed: `FLEETCORE_SEED=n cargo test --workspace --test seeds` (`--workspace`
//! keeps the features, and so the build, the same as CI's).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod drill;
pub mod history;
pub mod sim;

/// SplitMix64: the fault schedule's randomness, from the seed alone.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The seeds to run: `FLEETCORE_SEED=n` runs one, else `first..first + count`.
pub fn seeds_from(first: u64, count: u64) -> Vec<u64> {
    match std::env::var("FLEETCORE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (first..first + count).collect(),
    }
}

/// The seeds `0..default`, or only `FLEETCORE_SEED` when it is set (to replay one).
pub fn seeds(default: u64) -> Vec<u64> {
    match std::env::var("FLEETCORE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (0..default).collect(),
    }
}
