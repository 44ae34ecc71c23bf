//! The errors of the simulation routes (CONTRACT §9), in the API's JSON shape.
//!
//! Kept apart from [`ApiError`] so that the API's error table knows nothing of the
//! fake phone: these routes exist only in simulation mode.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use wa_actors::SessionStatus;
use wa_actors::connection::sim::{Fault, SimError};

use crate::http::error::{ApiError, ErrorBody, START_HINT};

/// An error answer of a `/sim` route.
#[derive(Debug, thiserror::Error)]
pub enum SimRouteError {
    /// Anything the API itself answers (bad input, a bad phone, …).
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("unknown fault {0:?}; valid faults: {names}", names = Fault::NAMES.join(", "))]
    UnknownFault(String),
    /// The fake phone refused, given the session's status at that moment.
    #[error("{error}")]
    FakePhone {
        error: SimError,
        status: SessionStatus,
    },
}

impl SimRouteError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Api(e) => e.status_code(),
            Self::UnknownFault(_) => StatusCode::BAD_REQUEST,
            Self::FakePhone {
                error: SimError::Store(_),
                ..
            } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::FakePhone { .. } => StatusCode::CONFLICT,
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Self::UnknownFault(_) => Some("see valid_faults"),
            Self::FakePhone {
                error: SimError::NoQrShown,
                ..
            } => Some("POST /api/start-session and wait for status qr_ready"),
            Self::FakePhone {
                error: SimError::NoConnection,
                ..
            } => Some(START_HINT),
            _ => None,
        }
    }
}

impl IntoResponse for SimRouteError {
    fn into_response(self) -> Response {
        let code = self.status_code();
        let body = ErrorBody::new(&self).hint(self.hint());
        match self {
            Self::Api(e) => e.into_response(),
            Self::UnknownFault(_) => body.with("valid_faults", &Fault::NAMES[..]).respond(code),
            Self::FakePhone { status, .. } => body.status(Some(status)).respond(code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(e: SimRouteError) -> (StatusCode, serde_json::Value) {
        crate::http::error::answer_of(e).await
    }

    #[tokio::test]
    async fn every_sim_error_answers_in_the_api_shape() {
        let (code, b) = answer(SimRouteError::UnknownFault("nope".into())).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert!(b["error"].as_str().unwrap().contains("\"nope\""), "{b}");
        assert_eq!(b["hint"], "see valid_faults");
        assert_eq!(
            b["valid_faults"].as_array().unwrap().len(),
            Fault::NAMES.len()
        );

        let (code, b) = answer(SimRouteError::FakePhone {
            error: SimError::NoQrShown,
            status: SessionStatus::Connecting,
        })
        .await;
        assert_eq!(code, StatusCode::CONFLICT);
        assert_eq!(b["status"], "connecting");
        assert!(b["hint"].as_str().unwrap().contains("qr_ready"), "{b}");

        let (code, b) = answer(SimRouteError::FakePhone {
            error: SimError::NoConnection,
            status: SessionStatus::NotStarted,
        })
        .await;
        assert_eq!(code, StatusCode::CONFLICT);
        assert_eq!(b["hint"], START_HINT);

        let (code, b) = answer(ApiError::BadRequest("fault is required".into()).into()).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(b, serde_json::json!({ "error": "fault is required" }));
    }
}
