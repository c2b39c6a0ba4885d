//! SMB 3.1.1 preauthentication integrity hash, MS-SMB2 3.3.5.4 / 3.2.5.2:
//! H(0) = 64 zero bytes, H(n+1) = SHA-512(H(n) || message).

use sha2::{Digest, Sha512};

/// A running SHA-512 preauth integrity hash value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreauthHash {
    value: [u8; 64],
}

impl Default for PreauthHash {
    fn default() -> Self {
        Self::new()
    }
}

impl PreauthHash {
    /// The initial value: 64 zero bytes.
    pub fn new() -> Self {
        PreauthHash { value: [0; 64] }
    }

    /// H = SHA-512(H || message), `message` being a whole SMB2 message.
    pub fn update(&mut self, message: &[u8]) {
        let mut h = Sha512::new();
        h.update(self.value);
        h.update(message);
        self.value.copy_from_slice(&h.finalize());
    }

    /// The current value.
    pub fn value(&self) -> [u8; 64] {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kdf::tests::vector;

    #[test]
    fn chain_matches_the_microsoft_311_example() {
        let mut h = PreauthHash::new();
        assert_eq!(h.value(), [0; 64]);
        for (packet, after) in [
            ("neg_req", "hash_after_neg_req"),
            ("neg_resp", "hash_after_neg_resp"),
            ("setup_req1", "hash_after_setup_req1"),
            ("setup_resp1", "hash_after_setup_resp1"),
            ("setup_req2", "hash_after_setup_req2"),
        ] {
            h.update(&vector(packet));
            assert_eq!(h.value().to_vec(), vector(after), "after {packet}");
        }
    }
}
