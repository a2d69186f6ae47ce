//! Entropy, injected like the clock: ids that must differ between runs (session
//! ids, assigned client ids, a node's link epoch, resource ids) are drawn here, so
//! production takes them from the OS and a simulation from its seed, and a seed
//! replays the same ids.

use std::sync::Arc;

/// A source of random bits.
pub trait Entropy: Send + Sync + 'static {
    /// The next 64 random bits.
    fn next_u64(&self) -> u64;

    /// A random (version 4) UUID.
    fn uuid(&self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

/// The operating system's generator (through `uuid`'s `getrandom`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn next_u64(&self) -> u64 {
        uuid::Uuid::new_v4().as_u64_pair().0
    }

    fn uuid(&self) -> uuid::Uuid {
        uuid::Uuid::new_v4()
    }
}

/// A shared source of entropy.
pub type SharedEntropy = Arc<dyn Entropy>;
