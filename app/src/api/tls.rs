use leptos::prelude::*;

use crate::error::AppError;
use crate::model::HttpsSettings;
#[cfg(feature = "ssr")]
use crate::auth;

/// Where the dashboard answers over HTTPS, and the local CA's root certificate (its download
/// address and SHA-256 fingerprint) when this instance certifies its own local names.
#[server(prefix = "/api/fn", endpoint = "https_info")]
pub async fn https_info() -> Result<HttpsSettings, AppError> {
    let (state, _me, _actor) = auth::require_user().await?;
    let cfg = &state.config;
    let https_url = cfg.nginx_listen_tls.map(|a| {
        let port = if a.port() == 443 { String::new() } else { format!(":{}", a.port()) };
        format!("https://{}{port}/", cfg.public_host)
    });
    let fingerprint = service::hosting::local_ca_fingerprint(cfg);
    Ok(HttpsSettings { https_url, local_ca_fingerprint: fingerprint })
}
