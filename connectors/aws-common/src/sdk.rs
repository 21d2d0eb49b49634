//! One `SdkConfig` for every client of a connector instance.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use secrecy::ExposeSecret;

use crate::AccessConfig;

/// Builds the config every client of the instance starts from.
///
/// - Retries: one attempt. Only the executor retries, so a failure comes back to it at once with
///   its class, and backoff, attempt counts and evidence stay in one place.
/// - HTTPS: rustls with ring (no aws-lc-rs), the system's roots.
/// - Timeouts: `connect_timeout_secs` to connect, `timeout_secs` for a whole operation.
/// - Credentials: the configured keys, else the default chain (environment, web identity, ECS,
///   instance metadata), resolved on first use, not here.
///
/// No request is sent here.
pub async fn sdk_config(access: &AccessConfig) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(access.region.clone()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(access.connect_timeout())
                .operation_timeout(access.timeout())
                .build(),
        );
    if let Some(url) = &access.endpoint_url {
        loader = loader.endpoint_url(url.trim_end_matches('/'));
    }
    if let (Some(id), Some(secret)) = (&access.access_key_id, &access.secret_access_key) {
        loader = loader.credentials_provider(Credentials::new(
            id,
            secret.expose_secret(),
            access
                .session_token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            None,
            "revoked-config",
        ));
    }
    loader.load().await
}
