//! Uuids and timestamps as Postgres sends them in binary (16 bytes; 8 bytes, microseconds since 2000), decoded
//! from arrays by sqlx without the `uuid` or a time crate: the source compares and hashes them, never reads them.

use sqlx::error::BoxDynError;
use sqlx::postgres::{PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Postgres, Type, TypeInfo};

/// A `uuid`, its 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Uuid(pub [u8; 16]);

/// A `timestamp` or `timestamptz`, as sent: microseconds since 2000-01-01 (only compared, so the zone is moot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Time(pub i64);

fn bytes<const N: usize>(value: PgValueRef<'_>, what: &str) -> Result<[u8; N], BoxDynError> {
    value.as_bytes()?.try_into().map_err(|_| format!("a binary {what} is {N} bytes").into())
}

impl Uuid {
    /// Postgres's text of the uuid: lowercase hex, hyphens after the 4th, 6th, 8th and 10th byte.
    pub fn hyphenated(&self) -> [u8; 36] {
        let id = &self.0;
        let mut text = [b'-'; 36];
        for (bytes, at) in [(&id[..4], 0), (&id[4..6], 9), (&id[6..8], 14), (&id[8..10], 19), (&id[10..], 24)] {
            hex::encode_to_slice(bytes, &mut text[at..at + 2 * bytes.len()]).expect("two hex digits a byte");
        }
        text
    }
}

impl Type<Postgres> for Uuid {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("uuid")
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        ty.name() == "UUID"
    }
}

impl PgHasArrayType for Uuid {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("_uuid")
    }
    fn array_compatible(ty: &PgTypeInfo) -> bool {
        ty.name() == "UUID[]"
    }
}

impl Decode<'_, Postgres> for Uuid {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        bytes(value, "uuid").map(Uuid)
    }
}

impl Type<Postgres> for Time {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("timestamp")
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        matches!(ty.name(), "TIMESTAMP" | "TIMESTAMPTZ")
    }
}

impl PgHasArrayType for Time {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("_timestamp")
    }
    fn array_compatible(ty: &PgTypeInfo) -> bool {
        matches!(ty.name(), "TIMESTAMP[]" | "TIMESTAMPTZ[]")
    }
}

impl Decode<'_, Postgres> for Time {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        bytes(value, "timestamp").map(|b| Time(i64::from_be_bytes(b)))
    }
}
