//! Scalars: `DateTime` (RFC 3339, UTC, `Z`) and `BigInt` (a decimal string, safe beyond 2^53).
use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{SecondsFormat, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(pub chrono::DateTime<Utc>);

/// An instant as an RFC 3339 string in UTC, e.g. `2026-11-24T21:00:00.000Z`.
#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| DateTime(d.with_timezone(&Utc)))
                .map_err(|_| InputValueError::custom("expected an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl From<chrono::DateTime<Utc>> for DateTime {
    fn from(d: chrono::DateTime<Utc>) -> Self {
        DateTime(d)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BigInt(pub u64);

/// A non-negative integer as a decimal string, so that JavaScript clients never lose precision.
#[Scalar(name = "BigInt")]
impl ScalarType for BigInt {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => s.parse().map(BigInt).map_err(|_| InputValueError::custom("expected a decimal string")),
            Value::Number(n) => n.as_u64().map(BigInt).ok_or_else(|| InputValueError::custom("expected a non-negative integer")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}
