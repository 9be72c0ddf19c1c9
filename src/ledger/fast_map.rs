//! A hash map keyed by account ids or names with a cheap multiplicative hash.
//!
//! Settlement and batch ingest look accounts up once or twice per transfer;
//! the default SipHash guards against hostile keys that a ledger's own
//! integer ids and validated names cannot be, and costs more than the lookup.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash as rustc uses it: fold each word in with a rotate and a multiply.
#[derive(Default, Clone, Copy)]
pub struct FoldHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FoldHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(tail) ^ (rest.len() as u64) << 56);
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_i64(&mut self, n: i64) {
        self.add(n as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FoldHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_differ_only_in_length_hash_apart() {
        let hash = |bytes: &[u8]| {
            let mut h = FoldHasher::default();
            h.write(bytes);
            h.finish()
        };
        assert_ne!(hash(b"a"), hash(b"a\0"));
        assert_ne!(hash(b"alice"), hash(b"alicf"));
    }

    #[test]
    fn works_as_a_map() {
        let mut map: FastMap<i64, i64> = FastMap::default();
        for id in 0..1000 {
            map.insert(id, id * 2);
        }
        assert!((0..1000).all(|id| map[&id] == id * 2));
    }
}
