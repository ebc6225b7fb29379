//! URLs as they are shown and logged: credentials taken out. Providers and endpoints were
//! configured with credentials in their URL (userinfo, `?api_key=`) before they had a
//! write-only `auth` (issue 22, finding 5), and such a URL stays usable for sending; but
//! everything a person or a log reads of it (the providers and endpoints APIs, a failed
//! send's step error, its log lines, the dry run's preview) goes through [`url`] here, the
//! one place that decides what is hidden.
//!
//! What is hidden: the userinfo and every query value (keys stay, they say what the
//! parameter is) and the fragment. What is not: the scheme, host, port and path, which
//! say where a request went. A secret in the path (a token as a path segment) is not
//! found; `auth` is the place for credentials (docs/security.md).

/// What stands in for a hidden part.
pub const REDACTED: &str = "redacted";

/// `url` with its userinfo, query values and fragment replaced by [`REDACTED`]. A text
/// that does not parse as a URL is shown as a placeholder, since where its credentials
/// are cannot be told.
pub fn url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<unparseable url>".to_owned();
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Only fails for URLs that cannot have userinfo, which then have none.
        let _ = parsed.set_password(None);
        let _ = parsed.set_username(REDACTED);
    }
    if parsed.query().is_some() {
        let keys: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
        if keys.is_empty() {
            parsed.set_query(None);
        } else {
            parsed
                .query_pairs_mut()
                .clear()
                .extend_pairs(keys.iter().map(|k| (k.as_str(), REDACTED)));
        }
    }
    if parsed.fragment().is_some() {
        parsed.set_fragment(Some(REDACTED));
    }
    parsed.into()
}

/// `text` (an error message about a request to `url`) with `url` and each credential in
/// it replaced. Messages are built with [`url`] already; this also covers what a library's
/// error adds (a client error may repeat the address it failed on, in its own form).
pub fn text(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &self::url(url));
    if let Ok(parsed) = url::Url::parse(url) {
        let mut secrets: Vec<String> = parsed.query_pairs().map(|(_, v)| v.into_owned()).collect();
        secrets.extend(parsed.password().map(str::to_owned));
        if !parsed.username().is_empty() {
            secrets.push(parsed.username().to_owned());
        }
        // Short values (`?to=x`) would mangle the message and reveal little; anything that
        // may be a key is long enough.
        for secret in secrets.iter().filter(|s| s.len() >= 4 && s.as_str() != REDACTED) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_query_values_and_fragment_are_hidden() {
        assert_eq!(
            url("https://user:pass@sms.example/send?api_key=SECRET&to=1#tok"),
            "https://redacted@sms.example/send?api_key=redacted&to=redacted#redacted"
        );
        assert_eq!(url("https://:pass@sms.example/"), "https://redacted@sms.example/");
        assert_eq!(
            url("http://127.0.0.1:9/send?flag"),
            "http://127.0.0.1:9/send?flag=redacted"
        );
        assert_eq!(url("https://sms.example/send?"), "https://sms.example/send");
        assert_eq!(url("https://sms.example/a/b"), "https://sms.example/a/b");
        assert_eq!(url("not a url user:pass"), "<unparseable url>");
    }

    #[test]
    fn messages_lose_the_url_and_its_credentials() {
        let target = "http://user:pass1234@127.0.0.1:9/send?api_key=SECRET";
        let message = format!("request to {target} failed: connect to 127.0.0.1:9 (key SECRET)");
        let shown = text(&message, target);
        assert!(!shown.contains("pass1234") && !shown.contains("SECRET"), "{shown}");
        assert!(
            shown.contains("http://redacted@127.0.0.1:9/send?api_key=redacted"),
            "{shown}"
        );
    }
}
