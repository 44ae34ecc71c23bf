//! `GET /api/events`: the session events as Server-Sent Events.
//!
//! Each event is `event: <name>`, `id: <event_id>`, `data: <the webhook's JSON>`;
//! a comment line every 15 s keeps proxies from closing a quiet stream. A listener
//! that falls too far behind gets `event: lagged` (`data: {"missed":N}`) and its
//! stream ends; so does every stream when the daemon stops.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use futures_util::stream;
use tracing::Instrument;

use super::AppState;
use crate::live_events::{Next, Subscription};

/// How often a quiet stream carries a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Live events: the webhook events as Server-Sent Events.
///
/// Each event is `event: <name>`, `id: <event_id>`, `data: <the webhook's JSON
/// body>`; a `:` comment every 15 s keeps a quiet stream open. A listener more than
/// 256 events behind gets `event: lagged` (`data: {"missed":N}`) and its stream
/// ends (read `/api/sessions`, then listen again). Streams end when the daemon
/// stops.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "monitoring",
    responses(
        (status = 200, description = "An endless stream of events.", content_type = "text/event-stream", body = String),
    ),
)]
pub async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let listener = state.events.subscribe();
    tracing::debug!("live events listener joined");
    // The stream is polled after the handler returned, outside the request's span:
    // its lines carry the span (and so the request id) only if it enters it.
    let span = tracing::Span::current();
    Sse::new(frames(listener, span)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// The SSE frames of one listener, until it lags or the daemon stops; what they
/// log is logged in `span`.
fn frames(
    listener: Subscription,
    span: tracing::Span,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(Some(listener), move |listener| {
        next_frame(listener).instrument(span.clone())
    })
}

/// The next frame of `listener`, and the listener again unless the stream ends.
async fn next_frame(
    listener: Option<Subscription>,
) -> Option<(Result<Event, Infallible>, Option<Subscription>)> {
    let mut listener = listener?;
    let frame = match listener.next().await {
        Next::Event(e) => Event::default().event(e.name).id(&e.id).data(&e.data),
        Next::Lagged(missed) => {
            tracing::info!(
                missed,
                "a live events listener fell behind; its stream ends"
            );
            let frame = Event::default()
                .event("lagged")
                .data(format!("{{\"missed\":{missed}}}"));
            return Some((Ok(frame), None));
        }
        Next::Closed => return None,
    };
    Some((Ok(frame), Some(listener)))
}
