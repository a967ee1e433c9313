//! AWS Signature Version 4 for the Amazon Managed Service for Prometheus (AMP) path.
//!
//! A thin layer over `aws-sigv4` (no hand-written crypto): it computes the signing headers
//! (`authorization`, `x-amz-date`, optionally `x-amz-content-sha256` and
//! `x-amz-security-token`) for a request given as method, URL, headers and body, and
//! applies them to a `reqwest::Request`.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use thiserror::Error;

/// The SigV4 signing name of Amazon Managed Service for Prometheus.
pub const AMP_SERVICE: &str = "aps";

/// Signing failed (bad URL, unsupported body, bad parameters).
#[derive(Debug, Error)]
#[error("SigV4 signing failed: {0}")]
pub struct SigV4Error(String);

/// The scope of a signature: where, for which service, at which time, and whether the
/// payload hash is also sent as `x-amz-content-sha256` (and signed).
#[derive(Debug, Clone, Copy)]
pub struct SigV4Scope<'a> {
    /// AWS region, e.g. `us-east-1`.
    pub region: &'a str,
    /// Signing name of the service, e.g. [`AMP_SERVICE`].
    pub service: &'a str,
    /// Signing time (`x-amz-date`).
    pub time: SystemTime,
    /// Add (and sign) `x-amz-content-sha256` with the payload's SHA-256.
    pub content_sha256_header: bool,
}

impl<'a> SigV4Scope<'a> {
    /// The scope used for AMP requests: service `aps`, now, with `x-amz-content-sha256`.
    pub fn amp(region: &'a str) -> Self {
        Self {
            region,
            service: AMP_SERVICE,
            time: SystemTime::now(),
            content_sha256_header: true,
        }
    }
}

/// Computes the headers that sign a request: `(name, value)` pairs to add to it, names in
/// lower case. `url` must be the full, already-encoded URL; `headers` are the headers the
/// request will carry (all are signed except those `aws-sigv4` excludes, such as
/// `user-agent`); `host` is signed from the URL when not among them.
pub fn signature_headers(
    credentials: &Credentials,
    scope: &SigV4Scope<'_>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Vec<(&'static str, String)>, SigV4Error> {
    let mut settings = SigningSettings::default();
    if scope.content_sha256_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(scope.time)
        .settings(settings)
        .build()
        .map_err(|e| SigV4Error(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SigV4Error(e.to_string()))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| SigV4Error(e.to_string()))?
        .into_parts();
    let (headers, params) = instructions.into_parts();
    if !params.is_empty() {
        return Err(SigV4Error(
            "expected header signing, got query parameters".into(),
        ));
    }
    Ok(headers
        .into_iter()
        .map(|h| (h.name(), h.value().to_owned()))
        .collect())
}

/// Signs a `reqwest` request in place: adds the signing headers computed over its method,
/// URL, headers and (in-memory) body.
pub fn sign_request(
    request: &mut reqwest::Request,
    credentials: &Credentials,
    scope: &SigV4Scope<'_>,
) -> Result<(), SigV4Error> {
    let body: &[u8] = match request.body() {
        None => &[],
        Some(b) => b
            .as_bytes()
            .ok_or_else(|| SigV4Error("cannot sign a streaming body".into()))?,
    };
    let header_values = request
        .headers()
        .iter()
        .map(|(name, value)| {
            value
                .to_str()
                .map(|v| (name.as_str(), v))
                .map_err(|_| SigV4Error(format!("header {name} is not visible ASCII")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let signed = signature_headers(
        credentials,
        scope,
        request.method().as_str(),
        request.url().as_str(),
        &header_values,
        body,
    )?;
    for (name, value) in signed {
        let mut value = reqwest::header::HeaderValue::from_str(&value)
            .map_err(|e| SigV4Error(format!("header {name}: {e}")))?;
        if name == "authorization" || name == "x-amz-security-token" {
            value.set_sensitive(true);
        }
        request.headers_mut().insert(name, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! AWS's published SigV4 test vectors (aws-sig-v4-test-suite and its successor, the
    //! aws-signing-test-suite shipped with the SDKs): credentials `AKIDEXAMPLE`, region
    //! us-east-1, service `service`, time 2015-08-30T12:36:00Z.

    use super::*;

    const ACCESS_KEY: &str = "AKIDEXAMPLE";
    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const HOST: (&str, &str) = ("Host", "example.amazonaws.com");

    fn suite_time() -> SystemTime {
        let ts: jiff::Timestamp = "2015-08-30T12:36:00Z".parse().unwrap();
        ts.into()
    }

    fn suite_scope(content_sha256_header: bool) -> SigV4Scope<'static> {
        SigV4Scope {
            region: "us-east-1",
            service: "service",
            time: suite_time(),
            content_sha256_header,
        }
    }

    fn creds(token: Option<&str>) -> Credentials {
        Credentials::new(
            ACCESS_KEY,
            SECRET_KEY,
            token.map(str::to_owned),
            None,
            "test-vectors",
        )
    }

    fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn names(headers: &[(&'static str, String)]) -> Vec<&'static str> {
        let mut n: Vec<_> = headers.iter().map(|(n, _)| *n).collect();
        n.sort_unstable();
        n
    }

    #[test]
    fn get_vanilla() {
        let h = signature_headers(
            &creds(None),
            &suite_scope(false),
            "GET",
            "https://example.amazonaws.com/",
            &[HOST],
            b"",
        )
        .unwrap();
        assert_eq!(
            header(&h, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
        assert_eq!(header(&h, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(names(&h), ["authorization", "x-amz-date"]);
    }

    #[test]
    fn get_vanilla_without_host_header_signs_the_url_host() {
        let h = signature_headers(
            &creds(None),
            &suite_scope(false),
            "GET",
            "https://example.amazonaws.com/",
            &[],
            b"",
        )
        .unwrap();
        assert!(header(&h, "authorization").unwrap().ends_with(
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        ));
    }

    #[test]
    fn get_vanilla_query() {
        let h = signature_headers(
            &creds(None),
            &suite_scope(false),
            "GET",
            "https://example.amazonaws.com/?Param1=value1&Param2=value2",
            &[HOST],
            b"",
        )
        .unwrap();
        assert_eq!(
            header(&h, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            )
        );
    }

    #[test]
    fn get_vanilla_with_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let h = signature_headers(
            &creds(Some(token)),
            &suite_scope(false),
            "GET",
            "https://example.amazonaws.com/",
            &[HOST],
            b"",
        )
        .unwrap();
        assert_eq!(
            header(&h, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date;x-amz-security-token, \
                 Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
            )
        );
        assert_eq!(header(&h, "x-amz-security-token"), Some(token));
    }

    #[test]
    fn post_vanilla() {
        let h = signature_headers(
            &creds(None),
            &suite_scope(false),
            "POST",
            "https://example.amazonaws.com/",
            &[HOST],
            b"",
        )
        .unwrap();
        assert!(header(&h, "authorization").unwrap().ends_with(
            "SignedHeaders=host;x-amz-date, \
             Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        ));
    }

    /// The aws-sig-v4-test-suite (2015) version: body hashed into the canonical request only.
    #[test]
    fn post_x_www_form_urlencoded() {
        let h = signature_headers(
            &creds(None),
            &suite_scope(false),
            "POST",
            "https://example.amazonaws.com/",
            &[("Content-Type", "application/x-www-form-urlencoded"), HOST],
            b"Param1=value1",
        )
        .unwrap();
        assert_eq!(
            header(&h, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, \
                 Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
            )
        );
        assert_eq!(header(&h, "x-amz-date"), Some("20150830T123600Z"));
    }

    /// The aws-signing-test-suite version (`sign_body: true`): content-length is signed and
    /// the payload hash is also sent as `x-amz-content-sha256`.
    #[test]
    fn post_x_www_form_urlencoded_signed_body() {
        let h = signature_headers(
            &creds(None),
            &suite_scope(true),
            "POST",
            "https://example.amazonaws.com/",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                HOST,
                ("Content-Length", "13"),
            ],
            b"Param1=value1",
        )
        .unwrap();
        assert_eq!(
            header(&h, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, \
                 Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"
            )
        );
        assert_eq!(
            header(&h, "x-amz-content-sha256"),
            Some("9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e")
        );
    }

    #[test]
    fn amp_request_gets_signing_headers() {
        let url = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-0123/api/v1/query";
        let body = b"query=up&time=1700000000".to_vec();
        let mut request = reqwest::Request::new(reqwest::Method::POST, url.parse().unwrap());
        request.headers_mut().insert(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        *request.body_mut() = Some(body.clone().into());
        sign_request(
            &mut request,
            &creds(Some("session-token")),
            &SigV4Scope::amp("eu-west-1"),
        )
        .unwrap();
        let h = request.headers();
        let auth = h.get("authorization").unwrap();
        assert!(auth.is_sensitive());
        let auth = auth.to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(auth.contains("/eu-west-1/aps/aws4_request, "), "{auth}");
        assert!(
            auth.contains(
                "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature="
            ),
            "{auth}"
        );
        let date = h.get("x-amz-date").unwrap().to_str().unwrap();
        assert_eq!(date.len(), 16, "{date}");
        assert!(date.ends_with('Z'));
        // SHA-256 of the body, lower-case hex.
        let sha = h.get("x-amz-content-sha256").unwrap().to_str().unwrap();
        use sha2::Digest;
        let want: String = sha2::Sha256::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sha, want);
        assert_eq!(h.get("x-amz-security-token").unwrap(), "session-token");
    }

    #[test]
    fn amp_signature_is_deterministic_for_a_fixed_time() {
        let scope = SigV4Scope {
            time: suite_time(),
            ..SigV4Scope::amp("us-east-1")
        };
        let url = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1/api/v1/query";
        let a = signature_headers(&creds(None), &scope, "POST", url, &[], b"query=up").unwrap();
        let b = signature_headers(&creds(None), &scope, "POST", url, &[], b"query=up").unwrap();
        let c = signature_headers(&creds(None), &scope, "POST", url, &[], b"query=upp").unwrap();
        assert_eq!(a, b);
        assert_ne!(header(&a, "authorization"), header(&c, "authorization"));
    }
}
