//! Request extractors that answer every rejection in JSON.
//!
//! axum's own `Json` and `Path` reject in plain text and ask for a JSON content
//! type; the Django client and curl users deserve `{"error": …}` and a body that
//! parses whatever its content type. These wrappers do that, and turn the loosely
//! typed `organization_id` (a string or a number, CONTRACT §2) into an [`OrgId`].

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use utoipa::ToSchema;
use wa_actors::OrgId;

use super::error::ApiError;
use super::openapi::schemas::OrgIdInputSchema;

/// The largest request body accepted (CONTRACT: a text message, not a file).
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON request body of type `T`; any content type is accepted.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit: BODY_LIMIT }
            } else {
                ApiError::BadRequest(format!(
                    "cannot read the request body: {}",
                    rejection.body_text()
                ))
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON request body as `T`, with the errors [`ApiJson`] answers.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "request body is empty; expected a JSON object".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // Name the field: "organization_id: invalid type: floating point `2.5`…".
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            json_error(inner)
        } else {
            json_error_at(&path, inner)
        }
    })?;
    de.end().map_err(json_error)?;
    Ok(value)
}

fn json_error(e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    ApiError::BadRequest(match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => format!("malformed JSON: {e}"),
        Category::Data => format!("invalid request body: {e}"),
    })
}

fn json_error_at(path: &str, e: serde_json::Error) -> ApiError {
    match e.classify() {
        serde_json::error::Category::Data => ApiError::BadRequest(format!("{path}: {e}")),
        _ => json_error(e),
    }
}

/// The `{org}` segment of a path, validated.
#[derive(Debug, Clone)]
pub struct OrgPath(pub OrgId);

impl<S: Send + Sync> FromRequestParts<S> for OrgPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        Ok(Self(OrgId::parse(&raw)?))
    }
}

/// A JSON field that may be a string or an integer (`"2"` or `2`), kept as text.
///
/// The Django client sends organization ids as numbers; the Node server took both.
/// Floats, booleans, arrays and objects are refused with a message naming the
/// expected types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The `organization_id` of a body: present, and a valid [`OrgId`].
pub fn required_org(field: Option<Text>) -> Result<OrgId, ApiError> {
    let raw = field.ok_or_else(|| ApiError::BadRequest("organization_id is required".into()))?;
    Ok(OrgId::parse(&raw.0)?)
}

/// A required text field of a body.
pub fn required(field: Option<Text>, name: &str) -> Result<String, ApiError> {
    field
        .map(|t| t.0)
        .ok_or_else(|| ApiError::BadRequest(format!("{name} is required")))
}

/// A body holding only `organization_id` (logout, clean); other fields are ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OrgBody {
    #[schema(value_type = OrgIdInputSchema, required = true)]
    pub organization_id: Option<Text>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_takes_strings_and_integers_only() {
        let parse = |j: &str| serde_json::from_str::<OrgBody>(j).map(|b| b.organization_id);
        assert_eq!(
            parse(r#"{"organization_id":"2"}"#).unwrap(),
            Some(Text("2".into()))
        );
        assert_eq!(
            parse(r#"{"organization_id":2}"#).unwrap(),
            Some(Text("2".into()))
        );
        assert_eq!(parse(r#"{"organization_id":null}"#).unwrap(), None);
        assert_eq!(parse(r#"{"x":1}"#).unwrap(), None);
        for bad in [
            r#"{"organization_id":2.5}"#,
            r#"{"organization_id":true}"#,
            r#"{"organization_id":[2]}"#,
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("a string or an integer"), "{err}");
        }
    }

    #[test]
    fn org_ids_are_validated() {
        assert_eq!(required_org(Some(Text("7".into()))).unwrap().as_str(), "7");
        assert!(matches!(required_org(None), Err(ApiError::BadRequest(_))));
        assert!(matches!(
            required_org(Some(Text("../x".into()))),
            Err(ApiError::OrgId(_))
        ));
    }

    /// Fuzzing (run briefly in every `cargo test`): whatever bytes or JSON arrive,
    /// the extractors never panic, and every rejection is a 4xx JSON error.
    mod fuzz {
        use axum::body::Body;
        use axum::response::IntoResponse;
        use proptest::prelude::*;
        use serde_json::Value;

        use super::*;

        /// The shape of the send-message body (the richest one).
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct SendLike {
            organization_id: Option<Text>,
            phone: Option<Text>,
            message: Option<String>,
        }

        fn runtime() -> tokio::runtime::Runtime {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
        }

        /// Extracts `T` from `body`; on a rejection, checks it is a JSON 4xx.
        fn extract<T: DeserializeOwned>(body: Vec<u8>) -> Option<T> {
            let req = Request::post("/").body(Body::from(body)).unwrap();
            match runtime().block_on(ApiJson::<T>::from_request(req, &())) {
                Ok(ApiJson(v)) => Some(v),
                Err(e) => {
                    let resp = e.into_response();
                    assert!(resp.status().is_client_error(), "{}", resp.status());
                    let bytes = runtime()
                        .block_on(axum::body::to_bytes(resp.into_body(), usize::MAX))
                        .unwrap();
                    let v: Value = serde_json::from_slice(&bytes).expect("a JSON error");
                    assert!(!v["error"].as_str().unwrap_or_default().is_empty(), "{v}");
                    None
                }
            }
        }

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                ".{0,80}".prop_map(Value::from),
                "[0-9+ ()-]{0,20}".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 24, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                    prop::collection::hash_map(
                        prop_oneof![
                            Just("organization_id".to_owned()),
                            Just("phone".to_owned()),
                            Just("message".to_owned()),
                            "[a-z_]{0,12}",
                        ],
                        inner,
                        0..6
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// A body with the three fields, each of any JSON type.
        fn send_shaped() -> impl Strategy<Value = Value> {
            (json_value(), json_value(), json_value()).prop_map(
                |(o, p, m)| serde_json::json!({ "organization_id": o, "phone": p, "message": m }),
            )
        }

        fn check_org(field: Option<Text>) {
            if let Ok(org) = required_org(field) {
                let s = org.as_str();
                assert!((1..=64).contains(&s.len()), "{s:?}");
                assert!(
                    s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                    "{s:?}"
                );
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
                if let Some(b) = extract::<SendLike>(body.clone()) {
                    check_org(b.organization_id);
                }
                if let Some(b) = extract::<OrgBody>(body) {
                    check_org(b.organization_id);
                }
            }

            #[test]
            fn arbitrary_json_never_panics(value in json_value()) {
                let body = serde_json::to_vec(&value).unwrap();
                if let Some(b) = extract::<SendLike>(body.clone()) {
                    check_org(b.organization_id);
                }
                if let Some(b) = extract::<OrgBody>(body) {
                    check_org(b.organization_id);
                }
            }

            #[test]
            fn send_shaped_json_never_panics(value in send_shaped()) {
                let body = serde_json::to_vec(&value).unwrap();
                let parsed = extract::<SendLike>(body);
                // Strings and integers are the only accepted ids and phones.
                let is_text = |v: &Value| v.is_null() || v.is_string() || v.is_i64() || v.is_u64();
                let acceptable = is_text(&value["organization_id"])
                    && is_text(&value["phone"])
                    && (value["message"].is_null() || value["message"].is_string());
                prop_assert_eq!(parsed.is_some(), acceptable, "{}", value);
                if let Some(b) = parsed {
                    check_org(b.organization_id);
                    if let Some(Text(phone)) = b.phone {
                        // Phone rules never panic and give digits only.
                        if let Ok(d) = crate::phone::PhoneRules::default().normalize(&phone) {
                            prop_assert!(d.bytes().all(|c| c.is_ascii_digit()) && d.len() <= 15);
                        }
                    }
                }
            }
        }
    }
}
