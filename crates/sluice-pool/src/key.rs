use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

/// Identifies a set of interchangeable connections. Built once (at config time) from a
/// canonical description; cloning is a reference-count bump and hashing is one `u64`.
#[derive(Clone)]
pub struct PoolKey(Arc<Inner>);

struct Inner {
    hash: u64,
    identity: String,
}

impl PoolKey {
    /// `identity` must contain every setting that makes connections differ.
    pub fn new(identity: String) -> Self {
        let hash =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .hash_one(&identity);
        Self(Arc::new(Inner { hash, identity }))
    }

    pub fn identity(&self) -> &str {
        &self.0.identity
    }
}

impl PartialEq for PoolKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.hash == other.0.hash && self.0.identity == other.0.identity)
    }
}

impl Eq for PoolKey {}

impl Hash for PoolKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

impl fmt::Debug for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.identity)
    }
}
