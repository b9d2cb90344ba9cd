//! Authentication: password hashes and access tokens.

mod password;
mod token;

pub use password::{PasswordError, Passwords};
pub use token::{Claims, TokenError, Tokens};
