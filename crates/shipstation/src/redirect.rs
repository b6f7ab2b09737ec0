//! Where a request may be redirected: only inside the origins it is allowed to reach.
//!
//! An origin is a scheme, a host and a port, compared as [`url`] normalises them
//! (scheme and host lowercase, IDNA hosts in their ASCII form, a scheme's default
//! port the same as no port). Every ShipStation request may follow a redirect only to
//! the configured origin; the fetch of a v1 webhook's `resource_url` (which may name a
//! numbered `ssapiN` shard, [`resource_url_allowed`](crate::resource_url_allowed)) only
//! within the origin it was sent to, since reqwest drops the credentials on a hop to
//! another host. A redirect anywhere else is never sent: [`policy`] stops there, and the 3xx answer
//! comes back to the caller, which [`refused`] reads as the hop that was refused.
//! A redirect target that carries user information is refused too, and no more than
//! [`MAX_HOPS`] redirects are followed.

use url::Url;

/// The most redirects one request follows (reqwest's default).
pub const MAX_HOPS: usize = 10;

/// Whether `a` and `b` are the same origin: scheme, host and port (explicit or the
/// scheme's default). Only http(s) URLs have an origin that equals anything.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    matches!(a.scheme(), "http" | "https") && a.origin() == b.origin()
}

/// A redirect policy that follows a redirect only when `allowed(target, from)` holds
/// (`from` is the URL that answered with the redirect) and the target names no user, for at most [`MAX_HOPS`] hops; any other redirect is not
/// followed and its 3xx answer is returned as it came.
pub fn policy<F>(allowed: F) -> reqwest::redirect::Policy
where
    F: Fn(&Url, &Url) -> bool + Send + Sync + 'static,
{
    reqwest::redirect::Policy::custom(move |attempt| {
        let target = attempt.url();
        let from = attempt.previous().last().unwrap_or(target);
        let ok = allowed(target, from) && target.username().is_empty() && target.password().is_none();
        if !ok {
            attempt.stop()
        } else if attempt.previous().len() > MAX_HOPS {
            attempt.error(format!("more than {MAX_HOPS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

/// The longest redirect target an error repeats, in characters (the same bound as a
/// webhook's `resource_url`); a longer one is cut and ends in `…`.
const MAX_TARGET_SHOWN: usize = 2048;

/// The redirect a [`policy`] refused to follow: `(from, to)`, where `from` is the URL
/// that answered 3xx and `to` is its `Location` resolved against it (as given when
/// it cannot be resolved), with any password blanked and cut to 2,048 characters.
/// `None` when the answer is not a redirect.
pub fn refused(response: &reqwest::Response) -> Option<(Url, String)> {
    // The statuses a policy is asked about; others (300, 304) are not redirects here.
    if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = response.headers().get(reqwest::header::LOCATION)?;
    let location = String::from_utf8_lossy(location.as_bytes()).trim().to_owned();
    let from = response.url().clone();
    let to = match from.join(&location) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("redacted"));
            }
            url.to_string()
        }
        Err(_) => location,
    };
    if to.chars().count() <= MAX_TARGET_SHOWN {
        return Some((from, to));
    }
    let mut cut: String = to.chars().take(MAX_TARGET_SHOWN).collect();
    cut.push('…');
    Some((from, cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        same_origin(&a.parse().unwrap(), &b.parse().unwrap())
    }

    #[test]
    fn origins_are_compared_after_normalisation() {
        assert!(same("https://SSAPI.ShipStation.com/orders", "https://ssapi.shipstation.com"));
        assert!(same("HTTPS://ssapi.shipstation.com:443/x", "https://ssapi.shipstation.com/y?z=1"));
        assert!(same("http://127.0.0.1:80/x", "http://127.0.0.1"));
        assert!(same("https://bücher.example/x", "https://xn--bcher-kva.example"));
    }

    #[test]
    fn another_scheme_host_or_port_is_another_origin() {
        assert!(!same("http://ssapi.shipstation.com/x", "https://ssapi.shipstation.com"));
        assert!(!same("https://ssapi.shipstation.com:8443/x", "https://ssapi.shipstation.com"));
        assert!(!same("https://ssapi7.shipstation.com/x", "https://ssapi.shipstation.com"));
        assert!(!same("https://127.0.0.1/x", "https://localhost"));
        assert!(!same("ftp://ssapi.shipstation.com/x", "ftp://ssapi.shipstation.com"));
    }
}
