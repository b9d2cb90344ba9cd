//! Authentication: password hashes and access tokens.

mod limiter;
mod password;
mod token;

pub use limiter::{Attempt, LoginLimiter, LoginLimits};
pub use password::{PasswordError, Passwords};
pub use token::{Claims, TokenError, Tokens};
