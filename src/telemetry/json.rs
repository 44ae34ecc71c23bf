//! One JSON object per line, for journald (CONTRACT §8).
//!
//! The layout is tracing-subscriber's own (`timestamp`, `level`, `fields`,
//! `target`, `span`, which the README's `jq` recipes use), with three changes:
//!
//! - **`org_id` everywhere it applies.** A line logged inside an org's span (the
//!   library's lines, the connection's) has that span's `org_id` in its `fields`
//!   and, like every line that names an org, at the top level too. So
//!   `jq 'select(.fields.org_id=="2")'` finds all of one shop's lines.
//! - **No `log.file`, `log.line`, `log.module_path`, `log.target`** on the lines
//!   of `log`-based libraries: their target is already the module path.
//! - **Numbers masked** in every string field at `info` and above (see
//!   [`Masker`]), whoever wrote the line; identifiers of our own (`org_id`,
//!   `message_id`, request and event ids, idempotency keys) are left as they are.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::mask::{Masker, NOT_MASKED};

/// The event formatter of the JSON log format.
pub struct JsonLines {
    masker: &'static Masker,
}

impl JsonLines {
    pub fn new(masker: &'static Masker) -> Self {
        Self { masker }
    }
}

/// One line, in the order tracing-subscriber writes its fields.
#[derive(Serialize)]
struct Line<'a> {
    timestamp: String,
    level: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_id: Option<Value>,
    fields: Map<String, Value>,
    target: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    span: Option<Map<String, Value>>,
}

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());

        let mut fields = FieldMap::default();
        event.record(&mut fields);
        let mut fields = fields.0;
        if *meta.level() <= Level::INFO {
            for (name, value) in fields.iter_mut() {
                if let Value::String(text) = value
                    && !NOT_MASKED.contains(&name.as_str())
                {
                    let masked = self.masker.mask(text).into_owned();
                    *text = masked;
                }
            }
        }

        // The org: the event's own, else that of the nearest span naming one.
        let mut span = None;
        let mut org_id = fields.get("org_id").cloned();
        if let Some(scope) = ctx.event_scope() {
            for (depth, in_scope) in scope.enumerate() {
                let recorded = span_fields(&in_scope);
                if org_id.is_none() {
                    org_id = recorded.get("org_id").cloned();
                }
                if depth == 0 {
                    let mut current = Map::new();
                    current.insert("name".into(), Value::from(in_scope.name()));
                    current.extend(recorded);
                    span = Some(current);
                }
            }
        }
        if let Some(org) = &org_id {
            fields.entry("org_id").or_insert_with(|| org.clone());
        }

        let line = Line {
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            level: meta.level().as_str(),
            org_id,
            fields,
            target: meta.target(),
            span,
        };
        let json = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{json}")
    }
}

/// A span's fields, as `JsonFields` recorded them (a JSON object).
fn span_fields<S>(span: &tracing_subscriber::registry::SpanRef<'_, S>) -> Map<String, Value>
where
    S: for<'a> LookupSpan<'a>,
{
    let extensions = span.extensions();
    let Some(recorded) = extensions.get::<FormattedFields<JsonFields>>() else {
        return Map::new();
    };
    match serde_json::from_str::<Value>(recorded) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// An event's fields as JSON values, without the `log.*` bookkeeping.
#[derive(Default)]
struct FieldMap(Map<String, Value>);

impl FieldMap {
    fn put(&mut self, field: &Field, value: Value) {
        if !field.name().starts_with("log.") {
            self.0.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for FieldMap {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
}
