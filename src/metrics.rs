//! The Prometheus recorder and the counters fed by session events.
//!
//! Counters come from the actor tree's session events (decrypt and stream errors,
//! cleanups, backups, sends). The route that serves them, and the HTTP latency
//! middleware, are in `http::metrics`. Per-org labels carry only org ids.

use std::sync::OnceLock;

use metrics::{counter, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use wa_actors::outbox::MessageStatus;
use wa_actors::{EventKind, EventSink, SessionEvent};

/// The process-wide recorder (installed on first use; the `metrics` facade has one
/// global recorder per process).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
            ])
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; then ours stays idle
        // and its render is empty, which the tests would show.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Turns session events into counters.
pub struct MetricsSink;

impl EventSink for MetricsSink {
    fn emit(&self, event: SessionEvent) {
        let org = event.org.to_string();
        match event.kind {
            EventKind::DecryptError => {
                counter!("wa_decrypt_errors_total", "org_id" => org).increment(1);
            }
            EventKind::StreamError { code } => {
                let code = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
                counter!("wa_stream_errors_total", "org_id" => org, "code" => code).increment(1);
            }
            EventKind::Cleaned { reason, backup } => {
                if backup.is_some() {
                    counter!("wa_backups_total", "org_id" => org.clone()).increment(1);
                }
                counter!("wa_cleanups_total", "org_id" => org, "reason" => reason).increment(1);
            }
            EventKind::Message(message) => {
                let status = message.status.as_str();
                counter!("wa_message_events_total", "org_id" => org.clone(), "status" => status)
                    .increment(1);
                match message.status {
                    MessageStatus::Sent => {
                        counter!("wa_messages_sent_total", "org_id" => org).increment(1);
                        // From acceptance to WhatsApp's ack: queueing, pacing,
                        // reconnects and resends included.
                        let waited = (event.at - message.accepted_at)
                            .to_std()
                            .unwrap_or_default();
                        histogram!("wa_message_accepted_to_sent_seconds")
                            .record(waited.as_secs_f64());
                    }
                    MessageStatus::Failed => {
                        counter!("wa_messages_failed_total", "org_id" => org).increment(1);
                    }
                    _ => {}
                }
            }
            EventKind::Healing { step, window, .. } => {
                let step = match step {
                    wa_actors::healing::Step::Restart => "restart",
                    wa_actors::healing::Step::Wipe => "wipe",
                };
                counter!("wa_healing_total", "org_id" => org, "step" => step, "window" => window)
                    .increment(1);
            }
            EventKind::StatusChanged { .. }
            | EventKind::Qr { .. }
            | EventKind::Connected { .. } => {}
        }
    }
}
