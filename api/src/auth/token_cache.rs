//! keystonemiddleware's token cache, in process (no memcached): what
//! Keystone said about a token, kept `token_cache_time` seconds so a warm
//! request costs a hash and a map lookup, not a round trip. Tokens are
//! keyed by their SHA-256, never stored in the clear. Refusals are cached
//! too, so a client retrying a bad token cannot hammer Keystone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::Credentials;

/// What Keystone answered for a token.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Valid until `expires_at`.
    Valid { creds: Credentials, expires_at: SystemTime },
    /// Unknown, expired or revoked.
    Invalid,
}

#[derive(Debug)]
struct Entry {
    verdict: Verdict,
    cached_at: Instant,
}

/// Token hash to verdict, each entry fresh for `ttl`.
#[derive(Debug)]
pub struct TokenCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

/// The cache key of a token (and of the way it was checked: a token
/// accepted past its expiry for a service is a different answer).
pub fn key(token: &str, allow_expired: bool) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([u8::from(allow_expired)]);
    h.update(token.as_bytes());
    h.finalize().into()
}

impl TokenCache {
    pub fn new(ttl: Duration, capacity: usize) -> TokenCache {
        TokenCache { ttl, capacity: capacity.max(1), entries: Mutex::new(HashMap::new()) }
    }

    /// The cached verdict, if still fresh. A valid token past its expiry
    /// reads as invalid unless `allow_expired`.
    pub fn get(&self, key: &[u8; 32], allow_expired: bool) -> Option<Verdict> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(key)?;
        if e.cached_at.elapsed() >= self.ttl {
            return None;
        }
        match &e.verdict {
            Verdict::Valid { expires_at, .. } if !allow_expired && *expires_at <= SystemTime::now() => {
                Some(Verdict::Invalid)
            }
            v => Some(v.clone()),
        }
    }

    pub fn put(&self, key: [u8; 32], verdict: Verdict) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            let ttl = self.ttl;
            entries.retain(|_, e| e.cached_at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, Entry { verdict, cached_at: Instant::now() });
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(secs_left: i64) -> Verdict {
        let now = SystemTime::now();
        let expires_at = if secs_left >= 0 {
            now + Duration::from_secs(secs_left as u64)
        } else {
            now - Duration::from_secs((-secs_left) as u64)
        };
        Verdict::Valid { creds: Credentials { user_id: Some("u".into()), ..Credentials::default() }, expires_at }
    }

    #[test]
    fn an_entry_is_fresh_for_the_ttl_and_gone_after_it() {
        let c = TokenCache::new(Duration::from_millis(200), 10);
        let k = key("tok", false);
        c.put(k, valid(3600));
        assert!(matches!(c.get(&k, false), Some(Verdict::Valid { .. })));
        assert!(c.get(&key("other", false), false).is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(c.get(&k, false).is_none());
    }

    #[test]
    fn a_cached_token_past_its_expiry_is_invalid_unless_expired_ones_are_allowed() {
        let c = TokenCache::new(Duration::from_secs(60), 10);
        let k = key("tok", true);
        c.put(k, valid(-5));
        assert!(matches!(c.get(&k, false), Some(Verdict::Invalid)));
        assert!(matches!(c.get(&k, true), Some(Verdict::Valid { .. })));
        assert_ne!(key("tok", true), key("tok", false));
    }

    #[test]
    fn a_full_cache_drops_stale_entries_first_and_never_grows_past_capacity() {
        let c = TokenCache::new(Duration::from_secs(60), 3);
        for t in ["a", "b", "c", "d", "e"] {
            c.put(key(t, false), Verdict::Invalid);
            assert!(c.len() <= 3);
        }
        assert!(matches!(c.get(&key("e", false), false), Some(Verdict::Invalid)));
    }
}
