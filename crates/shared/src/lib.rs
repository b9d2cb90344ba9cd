//! Types of the finance HTTP API (`API.md`), shared by the server and the client.
//!
//! Nothing here does I/O: requests, responses, the error body, the money type
//! and the validation rules, so both sides agree on them byte for byte.

pub mod api;
pub mod error;
pub mod imports;
pub mod money;
pub mod spreadsheet;
pub mod timefmt;
pub mod validate;

pub use api::*;
pub use error::{ErrorBody, ErrorCode};
pub use imports::*;
pub use money::{Decimal, Money, MoneyError};
