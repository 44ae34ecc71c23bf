//! The async runtime whatsapp-rust runs one org's client on: Tokio, with every
//! task it spawns inside the org's span.
//!
//! whatsapp-rust logs through the `log` crate, from tasks it spawns itself. A
//! `log` record that reaches `tracing` (the daemon bridges them) sits in whatever
//! span is current on the thread that logged it, and `tokio::spawn` does not carry
//! the spawner's span into the new task. The library spawns every task of a client
//! through the `Runtime` it was built with, so this one instruments them all:
//! the client's read loop, keepalive, handlers, the background saver and the
//! blocking store work. That is how a library line knows its org.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tracing::Instrument as _;
use whatsapp_rust::Runtime;
use whatsapp_rust::wacore::runtime::AbortHandle;

use crate::OrgId;

/// The span every log line about one org's connection sits in: its `org_id` is
/// what lets an operator follow one shop. At the error level so that any filter
/// that lets a line through keeps its span too.
pub(super) fn org_span(org: &OrgId) -> tracing::Span {
    tracing::error_span!(parent: None, "org", org_id = %org)
}

/// Tokio, with each spawned task and blocking job inside `span`.
pub(super) struct OrgRuntime {
    span: tracing::Span,
}

impl OrgRuntime {
    pub(super) fn new(span: tracing::Span) -> Self {
        Self { span }
    }
}

#[async_trait::async_trait]
impl Runtime for OrgRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) -> AbortHandle {
        let handle = tokio::spawn(future.instrument(self.span.clone()));
        AbortHandle::new(move || handle.abort())
    }

    fn spawn_detached(&self, future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) {
        tokio::spawn(future.instrument(self.span.clone()));
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn spawn_blocking(
        &self,
        f: Box<dyn FnOnce() + Send + 'static>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let span = self.span.clone();
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(move || span.in_scope(f)).await;
        })
    }

    fn yield_now(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        // A multi-threaded runtime: other tasks run on other threads.
        None
    }
}
