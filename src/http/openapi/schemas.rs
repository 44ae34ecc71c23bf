//! Schemas of the types the API shows but does not own: the actor crate's statuses
//! and ids (it knows nothing of HTTP, so it derives no schema), the loosely typed
//! request fields, and the one error body.
//!
//! Enumerations are read from the types' own `ALL` lists, so a status added to the
//! actor crate appears in the document without an edit here.

use std::borrow::Cow;

use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat,
    Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use wa_actors::SessionStatus;
use wa_actors::org_id::{MAX_LEN, RESERVED_NAMES};
use wa_actors::outbox::{MessageStatus, Origin};

/// A string schema whose values are `values`.
fn one_of_names<'a>(description: &str, values: impl IntoIterator<Item = &'a str>) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values))
        .into()
}

fn reference<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

/// Implements `ToSchema` for a schema-only type under `name`, with no references.
macro_rules! leaf_schema {
    ($type:ident, $name:literal) => {
        impl ToSchema for $type {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

/// A session's status (CONTRACT §3).
pub struct SessionStatusSchema;

impl PartialSchema for SessionStatusSchema {
    fn schema() -> RefOr<Schema> {
        one_of_names(
            "A session's status; README \"Statuses and what to do\" says what each means.",
            SessionStatus::ALL.iter().map(|s| s.as_str()),
        )
        .into()
    }
}
leaf_schema!(SessionStatusSchema, "SessionStatus");

/// A message's status in the outbox (CONTRACT §10).
pub struct MessageStatusSchema;

impl PartialSchema for MessageStatusSchema {
    fn schema() -> RefOr<Schema> {
        one_of_names(
            "Where a message stands: queued, sending, sent (WhatsApp's server acknowledged \
             it), delivered, read, failed (`error` says why), expired, cancelled.",
            MessageStatus::ALL.iter().map(|s| s.as_str()),
        )
        .into()
    }
}
leaf_schema!(MessageStatusSchema, "MessageStatus");

/// How a message reached the outbox.
pub struct OriginSchema;

impl PartialSchema for OriginSchema {
    fn schema() -> RefOr<Schema> {
        one_of_names(
            "`queue`: POST /api/messages; `compat`: POST /api/send-message.",
            Origin::ALL.iter().map(|o| o.as_str()),
        )
        .into()
    }
}
leaf_schema!(OriginSchema, "Origin");

/// The pattern of organization and message ids.
pub fn id_pattern() -> String {
    format!("^[A-Za-z0-9_-]{{1,{MAX_LEN}}}$")
}

/// An organization id as the API shows it, and as a path segment.
pub struct OrgIdSchema;

impl PartialSchema for OrgIdSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(id_pattern()))
            .description(Some(format!(
                "An organization (a shop). Reserved, refused with 400: {}.",
                RESERVED_NAMES.join(", ")
            )))
            .examples(["2"])
            .into()
    }
}
leaf_schema!(OrgIdSchema, "OrganizationId");

/// `organization_id` in a request body: a string or an integer (`"2"` or `2`).
pub struct OrgIdInputSchema;

impl PartialSchema for OrgIdInputSchema {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(reference::<OrgIdSchema>())
            .item(integer())
            .description(Some(
                "An organization id, as a string or an integer (the deployed client sends numbers).",
            ))
            .examples([serde_json::json!(2)])
            .into()
    }
}

impl ToSchema for OrgIdInputSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("OrganizationIdInput")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((OrgIdSchema::name().into(), OrgIdSchema::schema()));
    }
}

/// An integer that JSON readers take as one (a 64-bit one).
fn integer() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
}

/// A phone number in a request body: a string or an integer.
pub struct PhoneInputSchema;

impl PartialSchema for PhoneInputSchema {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(integer().minimum(Some(0)))
            .description(Some(
                "A phone number, with or without `+`, spaces, dashes, dots or parentheses, \
                 checked against its country's numbering plan; without `+` it is read as a \
                 national number of `[phone] default_region`, else as digits with a country \
                 code. Anything else is a 400 naming the problem.",
            ))
            .examples(["+57 300 123 4567"])
            .into()
    }
}
leaf_schema!(PhoneInputSchema, "PhoneInput");

/// A message id as a path segment.
pub struct MessageIdSchema;

impl PartialSchema for MessageIdSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(id_pattern()))
            .description(Some(
                "A message id, fixed when the message is accepted (WhatsApp Web's shape, \
                 `3EB0` and 18 hex digits).",
            ))
            .examples(["3EB0A1B2C3D4E5F6A7B8C9"])
            .into()
    }
}
leaf_schema!(MessageIdSchema, "MessageId");

/// The body of every error answer: `error`, and `status` and `hint` where they
/// apply (see [`crate::http::error::ErrorBody`]).
pub struct ErrorSchema;

impl PartialSchema for ErrorSchema {
    fn schema() -> RefOr<Schema> {
        let text = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        ObjectBuilder::new()
            .description(Some(
                "Every error is JSON with at least `error`; errors about a session also \
                 carry its `status` and, where a person can act, a `hint`.",
            ))
            .property("error", text("What went wrong, in words."))
            .required("error")
            .property(
                "status",
                AnyOfBuilder::new()
                    .item(reference::<SessionStatusSchema>())
                    .item(reference::<MessageStatusSchema>())
                    .description(Some(
                        "The session's status; for a refused cancel, the message's status.",
                    )),
            )
            .property("hint", text("What a person can do about it."))
            .property(
                "message",
                ObjectBuilder::new().description(Some(
                    "409 of /api/messages: the message that holds the idempotency key, or \
                     that can no longer be cancelled.",
                )),
            )
            .property(
                "valid_faults",
                ArrayBuilder::new()
                    .items(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some("/sim: the fault names, after an unknown one.")),
            )
            .into()
    }
}

impl ToSchema for ErrorSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Error")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            SessionStatusSchema::name().into(),
            SessionStatusSchema::schema(),
        ));
        schemas.push((
            MessageStatusSchema::name().into(),
            MessageStatusSchema::schema(),
        ));
    }
}
