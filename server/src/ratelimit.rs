//! Token buckets (spec §5.3): per connection for each action class, and per address for
//! authentication attempts. A refused request gets RATE_LIMITED with the time until a token is
//! available; nothing is dropped silently.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use banter_protocol::ids::{RoomId, UserId};

use crate::config::Bucket;

/// One bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_ms: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(bucket: Bucket, now: Instant) -> Self {
        let burst = f64::from(bucket.burst.max(1));
        Self { tokens: burst, burst, per_ms: f64::from(bucket.per_minute) / 60_000.0, last: now }
    }

    /// Takes a token, or says how many ms until one is there.
    pub(crate) fn take(&mut self, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64() * 1000.0;
        self.tokens = (self.tokens + elapsed * self.per_ms).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if self.per_ms > 0.0 {
            Err(((1.0 - self.tokens) / self.per_ms).ceil() as u64)
        } else {
            Err(u64::MAX)
        }
    }
}

/// The buckets of one connection, one per class.
#[derive(Debug)]
pub(crate) struct Limiter {
    config: HashMap<String, Bucket>,
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl Limiter {
    pub(crate) fn new(config: &std::collections::BTreeMap<String, Bucket>) -> Self {
        Self {
            config: config.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token of `class`; classes without a configured limit are unlimited.
    pub(crate) fn check(&self, class: &str, now: Instant) -> Result<(), u64> {
        let Some(bucket) = self.config.get(class) else { return Ok(()) };
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.entry(class.to_owned()).or_insert_with(|| TokenBucket::new(*bucket, now)).take(now)
    }
}

/// Per-account buckets: one [`Limiter`] per user, shared by all of the user's connections.
#[derive(Debug)]
pub(crate) struct AccountLimiter {
    config: Mutex<std::collections::BTreeMap<String, Bucket>>,
    accounts: Mutex<HashMap<UserId, (Instant, Arc<Limiter>)>>,
}

impl AccountLimiter {
    pub(crate) fn new(config: &std::collections::BTreeMap<String, Bucket>) -> Self {
        Self { config: Mutex::new(config.clone()), accounts: Mutex::new(HashMap::new()) }
    }

    /// The limits in force (new connections take their per-connection buckets from them).
    pub(crate) fn rates(&self) -> std::collections::BTreeMap<String, Bucket> {
        self.config.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// New limits (configuration reload): every account starts over with full buckets.
    pub(crate) fn set_rates(&self, rates: &std::collections::BTreeMap<String, Bucket>) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = rates.clone();
        self.accounts.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub(crate) fn check(&self, user: UserId, class: &str, now: Instant) -> Result<(), u64> {
        let limiter = {
            let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
            if accounts.len() >= MAX_TRACKED {
                accounts
                    .retain(|_, (used, _)| now.saturating_duration_since(*used).as_secs() < 600);
            }
            let entry = accounts
                .entry(user)
                .or_insert_with(|| (now, Arc::new(Limiter::new(&self.rates()))));
            entry.0 = now;
            entry.1.clone()
        };
        limiter.check(class, now)
    }
}

/// Slow mode (spec §6.3): when each member last posted in each room that has it on.
#[derive(Debug, Default)]
pub(crate) struct SlowMode {
    last_post: Mutex<HashMap<(RoomId, UserId), Instant>>,
}

impl SlowMode {
    /// Takes `user`'s slot in `room` now if the interval since their last post has passed
    /// (else how many ms they must still wait). Checking and taking are one step, so that
    /// parallel posts cannot all pass; the slot is given back if the post is not kept.
    pub(crate) fn reserve(
        &self,
        room: RoomId,
        user: UserId,
        interval: Duration,
        now: Instant,
    ) -> Result<SlowModeSlot<'_>, u64> {
        let mut last_post = self.last_post.lock().unwrap_or_else(|e| e.into_inner());
        let previous = last_post.get(&(room, user)).copied();
        if let Some(last) = previous.filter(|&last| now < last + interval) {
            return Err(u64::try_from((last + interval - now).as_millis()).unwrap_or(u64::MAX));
        }
        if last_post.len() >= MAX_TRACKED {
            // Slow mode is at most a day: older posts no longer hold anyone back.
            last_post.retain(|_, at| now.saturating_duration_since(*at).as_secs() < 86_400);
        }
        last_post.insert((room, user), now);
        Ok(SlowModeSlot { slow: self, key: (room, user), at: now, previous, kept: false })
    }
}

/// A member's slow-mode slot, taken when a post was admitted: given back on drop (the
/// previous post's time restored) unless [`keep`](Self::keep) says the post was committed.
#[derive(Debug)]
pub(crate) struct SlowModeSlot<'a> {
    slow: &'a SlowMode,
    key: (RoomId, UserId),
    at: Instant,
    previous: Option<Instant>,
    kept: bool,
}

impl SlowModeSlot<'_> {
    /// The post was committed: the slot stays taken.
    pub(crate) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for SlowModeSlot<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let mut last_post = self.slow.last_post.lock().unwrap_or_else(|e| e.into_inner());
        if last_post.get(&self.key) == Some(&self.at) {
            match self.previous {
                Some(previous) => last_post.insert(self.key, previous),
                None => last_post.remove(&self.key),
            };
        }
    }
}

/// Buckets per key (a client address, a username) for authentication, shared by all
/// connections: attempts against one account are limited however many addresses they come
/// from, and attempts from one address however many accounts they try (spec §12.4).
#[derive(Debug)]
pub(crate) struct KeyedLimiter<K> {
    bucket: Mutex<Bucket>,
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

/// Above this many tracked keys, idle ones are forgotten (bounded memory under a flood from
/// many addresses).
const MAX_TRACKED: usize = 100_000;

impl<K: std::hash::Hash + Eq> KeyedLimiter<K> {
    pub(crate) fn new(bucket: Bucket) -> Self {
        Self { bucket: Mutex::new(bucket), buckets: Mutex::new(HashMap::new()) }
    }

    /// A new limit (configuration reload): every key starts over.
    pub(crate) fn set_bucket(&self, bucket: Bucket) {
        *self.bucket.lock().unwrap_or_else(|e| e.into_inner()) = bucket;
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub(crate) fn check(&self, key: K, now: Instant) -> Result<(), u64> {
        let bucket = *self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED {
            // Keys quiet for a minute have refilled (or nearly); forget them.
            buckets.retain(|_, b| now.saturating_duration_since(b.last).as_secs() < 60);
        }
        buckets.entry(key).or_insert_with(|| TokenBucket::new(bucket, now)).take(now)
    }
}

/// What connection caps and address rate limits count: an IPv4 address, or an IPv6 address's
/// /64 (one host, or one customer of a provider, holds a whole /64: counted one by one, a
/// single machine would have 2^64 budgets). IPv4-mapped IPv6 counts as IPv4.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_ipv6_addresses_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let limiter = KeyedLimiter::new(Bucket { burst: 2, per_minute: 1 });
        let now = Instant::now();
        assert!(limiter.check(address_key(a), now).is_ok());
        assert!(limiter.check(address_key(b), now).is_ok());
        assert!(limiter.check(address_key("2001:db8:1:2::9".parse().unwrap()), now).is_err());
    }

    #[test]
    fn slow_mode_holds_a_member_back_for_the_interval_in_that_room_only() {
        let now = Instant::now();
        let (room, user) = (RoomId(1), UserId(2));
        let slow = SlowMode::default();
        let interval = Duration::from_secs(30);
        slow.reserve(room, user, interval, now).unwrap().keep();
        let later = now + Duration::from_secs(10);
        assert_eq!(slow.reserve(room, user, interval, later).unwrap_err(), 20_000);
        slow.reserve(RoomId(3), user, interval, now).unwrap().keep();
        slow.reserve(room, UserId(4), interval, now).unwrap().keep();
        slow.reserve(room, user, interval, now + interval).unwrap().keep();
    }

    #[test]
    fn security_slow_mode_admits_one_of_parallel_posts_and_gives_back_a_failed_ones_slot() {
        let now = Instant::now();
        let (room, user) = (RoomId(1), UserId(2));
        let slow = SlowMode::default();
        let interval = Duration::from_secs(30);
        // Admitted but not yet committed: the next one is already held back.
        let first = slow.reserve(room, user, interval, now).unwrap();
        assert!(slow.reserve(room, user, interval, now).is_err());
        // The admitted post failed: its slot is given back.
        drop(first);
        let second = slow.reserve(room, user, interval, now).unwrap();
        second.keep();
        assert!(slow.reserve(room, user, interval, now + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(Bucket { burst: 3, per_minute: 60 }, now);
        for _ in 0..3 {
            assert_eq!(bucket.take(now), Ok(()));
        }
        assert_eq!(bucket.take(now), Err(1000));
        assert_eq!(bucket.take(now + Duration::from_millis(500)), Err(500));
        assert_eq!(bucket.take(now + Duration::from_millis(1000)), Ok(()));
    }
}
