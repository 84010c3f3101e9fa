//! `GET /`: the web page, one self-contained HTML file embedded in the binary (no CDN, works
//! offline), served with a Content-Security-Policy that allows only its own inline script.

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The page: HTML, CSS and JavaScript in one file.
pub const PAGE_HTML: &str = include_str!("page/index.html");

/// The Content-Security-Policy for [`PAGE_HTML`]: its inline scripts by their SHA-256, its
/// inline styles, images and video from this page (blob URLs, the camera), API calls to this
/// origin only.
pub fn content_security_policy(html: &str) -> String {
    let mut hashes = String::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let after_tag = &rest[start..];
        let Some(open_end) = after_tag.find('>') else {
            break;
        };
        let body = &after_tag[open_end + 1..];
        let Some(close) = body.find("</script>") else {
            break;
        };
        let digest = Sha256::digest(&body.as_bytes()[..close]);
        let encoded = base64::engine::general_purpose::STANDARD.encode(digest);
        hashes.push_str(&format!(" 'sha256-{encoded}'"));
        rest = &body[close..];
    }
    format!(
        "default-src 'none'; script-src{hashes}; style-src 'unsafe-inline'; \
         img-src 'self' blob: data:; media-src 'self' blob: mediastream:; connect-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// The handler.
pub async fn page() -> Response {
    static POLICY: std::sync::LazyLock<HeaderValue> = std::sync::LazyLock::new(|| {
        HeaderValue::from_str(&content_security_policy(PAGE_HTML))
            .expect("a policy of ASCII characters")
    });
    let mut response = Html(PAGE_HTML).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, POLICY.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_inline_scripts() {
        let html = "<p>x</p><script>let a = 1;</script><script type=\"module\">b()</script>";
        let policy = content_security_policy(html);
        let expected = |code: &str| {
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(code.as_bytes()))
        };
        assert!(
            policy.contains(&format!("'sha256-{}'", expected("let a = 1;"))),
            "{policy}"
        );
        assert!(
            policy.contains(&format!("'sha256-{}'", expected("b()"))),
            "{policy}"
        );
        assert!(!policy.contains("unsafe-eval"));
        assert!(content_security_policy(PAGE_HTML).contains("'sha256-"));
    }

    #[test]
    fn the_page_is_self_contained() {
        for external in ["http://", "https://", "//cdn", "src=\"/"] {
            assert!(
                !PAGE_HTML.contains(external),
                "the page refers to `{external}`: it must work offline"
            );
        }
    }
}
