//! Schemas of what the simulation routes take and show from the actor crate.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};
use wa_actors::connection::sim::Fault;

fn names<'a>(description: &str, values: impl IntoIterator<Item = &'a str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values))
        .into()
}

/// A fault's name (CONTRACT §9), from the simulator's own list.
pub struct FaultSchema;

impl PartialSchema for FaultSchema {
    fn schema() -> RefOr<Schema> {
        names("A signal the fake connection reports.", Fault::NAMES)
    }
}

impl ToSchema for FaultSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Fault")
    }
}

/// What a recipient's phone reports.
pub struct ReceiptTypeSchema;

impl PartialSchema for ReceiptTypeSchema {
    fn schema() -> RefOr<Schema> {
        names("What the recipient's phone reports.", ["delivered", "read"])
    }
}

impl ToSchema for ReceiptTypeSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ReceiptType")
    }
}

/// One delivery attempt of a fake phone: the simulator's `SentRecord`, shown as it
/// serializes.
pub struct SentRecordSchema;

impl PartialSchema for SentRecordSchema {
    fn schema() -> RefOr<Schema> {
        let string = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        ObjectBuilder::new()
            .property("to", string("The recipient, digits."))
            .property("text", string("The text (or a media message's caption)."))
            .property(
                "message_id",
                string("The WhatsApp message id of the attempt."),
            )
            .property(
                "kind",
                string("What was sent.").enum_values(Some(["text", "image", "document"])),
            )
            .required("to")
            .required("text")
            .required("message_id")
            .required("kind")
            .into()
    }
}

impl ToSchema for SentRecordSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SentRecord")
    }
}
