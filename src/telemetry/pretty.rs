//! Field formatting of the human-readable log format: tracing-subscriber's
//! `name=value` layout, with numbers masked and the `log.*` bookkeeping left out.
//!
//! A field formatter does not know its event's level, so on a terminal numbers
//! are masked at every level (`RUST_LOG=debug` with JSON keeps them in debug lines).

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

use super::mask::{Masker, NOT_MASKED};

/// The field formatter of the pretty log format.
pub struct PrettyFields {
    masker: &'static Masker,
}

impl PrettyFields {
    pub fn new(masker: &'static Masker) -> Self {
        Self { masker }
    }
}

impl<'writer> FormatFields<'writer> for PrettyFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = Visitor {
            writer: &mut writer,
            masker: self.masker,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'a, 'w> {
    writer: &'a mut Writer<'w>,
    masker: &'static Masker,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_, '_> {
    fn write(&mut self, field: &Field, text: &str) {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let text = if NOT_MASKED.contains(&name) {
            text.into()
        } else {
            self.masker.mask(text)
        };
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if name == "message" {
            write!(self.writer, "{separator}{text}")
        } else {
            write!(self.writer, "{separator}{name}={text}")
        };
    }
}

impl Visit for Visitor<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.write(field, &text);
    }
}
