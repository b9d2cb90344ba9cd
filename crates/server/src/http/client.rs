//! The client's address: the socket's peer, or with a trusted proxy in front,
//! the address that proxy reports in `X-Forwarded-For`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use ipnet::IpNet;

use super::error::ApiError;
use crate::state::AppState;

/// Where a request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        Ok(ClientAddr(client_ip(
            peer,
            &forwarded,
            &state.trusted_proxies,
        )))
    }
}

/// The client address: `X-Forwarded-For` is believed only from a trusted
/// proxy, and read from the right, skipping further trusted proxies, so a
/// client cannot choose its own address by sending the header itself.
pub fn client_ip(peer: IpAddr, forwarded_for: &str, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for
        .rsplit(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
    {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        assert_eq!(
            client_ip(ip("203.0.113.9"), "1.2.3.4", &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("10.0.0.5"), "1.2.3.4", &trusted),
            ip("1.2.3.4")
        );
        // A client's own header is left of what the proxy appended.
        assert_eq!(
            client_ip(ip("10.0.0.5"), "6.6.6.6, 1.2.3.4", &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(ip("10.0.0.5"), "1.2.3.4, 10.0.0.7", &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(client_ip(ip("10.0.0.5"), "", &trusted), ip("10.0.0.5"));
        assert_eq!(
            client_ip(ip("10.0.0.5"), "garbage", &trusted),
            ip("10.0.0.5")
        );
    }
}
