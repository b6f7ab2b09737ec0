//! The secret path segment of a webhook URL that the `demo` and `bench` commands make
//! for their own in-process receivers (a configured deployment reads its token from
//! an environment variable instead).

use jiff::Timestamp;

/// 128 random bits as 32 hex digits: two draws of the standard library's randomly
/// keyed hasher (a fresh random key each), fed the current time. Unguessable enough
/// for a token that lives as long as one run on 127.0.0.1.
pub(crate) fn webhook_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let part = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u128(Timestamp::now().as_nanosecond() as u128);
        h.finish()
    };
    format!("{:016x}{:016x}", part(1), part(2))
}

#[cfg(test)]
mod tests {
    use super::webhook_token;

    #[test]
    fn each_run_gets_its_own_32_digit_token() {
        let (a, b) = (webhook_token(), webhook_token());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b, "two tokens are never the same");
    }
}
