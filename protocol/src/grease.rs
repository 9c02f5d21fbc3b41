//! GREASE (RFC 9170): values reserved in every registry and sent on purpose so that peers keep
//! their "skip what you do not know" paths working (spec §10.5).

/// True when `value` is `0x1f * N + 0x21` for some N ≥ 0.
pub const fn is_grease(value: u64) -> bool {
    value >= 0x21 && (value - 0x21).is_multiple_of(0x1f)
}

/// The GREASE value for `n` (`0x1f * n + 0x21`). Callers pass a small `n` (a random byte is
/// plenty); the caller chooses it so that this crate reads no randomness itself.
pub const fn value(n: u32) -> u64 {
    0x1f * n as u64 + 0x21
}

#[cfg(test)]
mod tests {
    #[test]
    fn grease_values_follow_the_pattern() {
        assert!(super::is_grease(0x21));
        assert!(super::is_grease(0x40));
        assert!(super::is_grease(super::value(1000)));
        assert!(!super::is_grease(0x20));
        assert!(!super::is_grease(0x41));
    }
}
