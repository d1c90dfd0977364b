//! How loadgen opens each connection beyond the URL: extra handshake
//! headers (with per-connection placeholders), a subprotocol, an Origin,
//! and TLS trust. Validated once into [`DialSettings`], which travel to
//! worker processes as data; each process builds its [`Dialer`] from them.

use crate::net::tls;
use crate::placeholders::{CONNECTION_VARS, Template};
use hyper::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Handshake headers that loadgen sets itself and `--header` may not.
const RESERVED: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "origin",
];

/// Handshake options, validated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DialSettings {
    /// `--header 'Name: value'`, the value a template of {conn}, {session},
    /// {run}, {rand}. Default: none.
    pub headers: Vec<(String, Template)>,
    /// `--subprotocol`: asked for, and required in the answer. Default: none.
    pub subprotocol: Option<String>,
    /// `--origin`. Default: none.
    pub origin: Option<String>,
    /// `--ca-cert`: extra trust anchors, PEM text. Default: none (webpki roots).
    pub ca_pem: Option<String>,
    /// `--insecure`: accept any server certificate. Default: off.
    pub insecure: bool,
}

impl DialSettings {
    /// Parse one `--header 'Name: value'`.
    pub fn add_header(&mut self, raw: &str) -> Result<(), String> {
        let (name, value) = raw
            .split_once(':')
            .ok_or_else(|| format!("--header {raw:?} is not 'Name: value'"))?;
        let name = name.trim();
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("--header {raw:?}: {name:?} is not a header name"));
        }
        if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "--header {raw:?}: loadgen sets {name} itself (use --subprotocol or --origin for those)"
            ));
        }
        let value = value.trim();
        if HeaderValue::from_str(value).is_err() {
            return Err(format!(
                "--header {raw:?}: the value has characters a header cannot carry"
            ));
        }
        let t = Template::parse(value, CONNECTION_VARS).map_err(|e| format!("--header: {e}"))?;
        self.headers.push((name.to_string(), t));
        Ok(())
    }
}

/// What a process connects with, built once from [`DialSettings`].
pub struct Dialer {
    pub settings: DialSettings,
    /// `None` until a `wss://` target needs it.
    pub tls: Option<tokio_rustls::TlsConnector>,
}

impl Dialer {
    /// `tls`: whether any target is `wss://`.
    pub fn new(settings: &DialSettings, tls: bool) -> Result<Dialer, String> {
        let tls = if tls {
            let c = tls::client_config(settings.ca_pem.as_deref(), settings.insecure)
                .map_err(|e| format!("--ca-cert: {e}"))?;
            Some(tokio_rustls::TlsConnector::from(Arc::clone(&c)))
        } else {
            None
        };
        Ok(Dialer {
            settings: settings.clone(),
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked_when_given() {
        let mut d = DialSettings::default();
        d.add_header("Authorization: Bearer {session}").unwrap();
        d.add_header("X-Trace:abc").unwrap();
        assert_eq!(d.headers.len(), 2);
        assert_eq!(d.headers[1].0, "X-Trace");
        for bad in [
            "no colon",
            "Bad Name: x",
            "Host: evil",
            "sec-websocket-key: x",
            "X: {nope}",
            "X: a\u{7}b",
        ] {
            assert!(d.add_header(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_ca_file_is_refused() {
        let d = DialSettings {
            ca_pem: Some("not a certificate".into()),
            ..DialSettings::default()
        };
        let e = Dialer::new(&d, true).err().expect("refused");
        assert!(e.contains("--ca-cert"), "{e}");
        // Without wss:// targets, TLS is never set up.
        assert!(Dialer::new(&d, false).is_ok());
    }
}
