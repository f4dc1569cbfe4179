//! A deterministic CSPRNG expanded from a 32-byte seed.
//!
//! The SPAKE2 library draws its secret scalar from an RNG it is handed. Handing it this RNG,
//! seeded from a persisted [`Secret32`], means a pairing in progress can be re-created
//! exactly after the process that drove it restarts: same scalar, same messages.
//!
//! Construction: block `i` = HMAC-SHA256(seed, `SEEDED_RNG` || label || i as u64 BE).

use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroize;

use super::labels;
use super::secret::Secret32;

/// See the module docs. Never use it for anything that must differ between two runs with
/// the same seed and label.
pub struct SeededRng {
    seed: Secret32,
    label: &'static [u8],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRng {
    /// An RNG stream for `label` under `seed`.
    pub fn new(seed: &Secret32, label: &'static [u8]) -> Self {
        Self { seed: seed.clone(), label, counter: 0, block: [0; 32], used: 32 }
    }

    fn refill(&mut self) {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.seed.expose()).expect("HMAC takes any key length");
        mac.update(labels::SEEDED_RNG);
        mac.update(self.label);
        mac.update(&self.counter.to_be_bytes());
        self.block = mac.finalize().into_bytes().into();
        self.counter += 1;
        self.used = 0;
    }
}

impl Drop for SeededRng {
    fn drop(&mut self) {
        self.block.zeroize();
    }
}

impl core::fmt::Debug for SeededRng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SeededRng(..)")
    }
}

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            if self.used == 32 {
                self.refill();
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for SeededRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_different_label_different_stream() {
        let seed = Secret32::from_bytes([3; 32]);
        let (mut a, mut b) = (SeededRng::new(&seed, b"x"), SeededRng::new(&seed, b"x"));
        let mut c = SeededRng::new(&seed, b"y");
        let (mut ba, mut bb, mut bc) = ([0u8; 100], [0u8; 100], [0u8; 100]);
        a.fill_bytes(&mut ba);
        b.fill_bytes(&mut bb[..7]);
        b.fill_bytes(&mut bb[7..]);
        c.fill_bytes(&mut bc);
        assert_eq!(ba, bb);
        assert_ne!(ba, bc);
    }
}
