//! Wiring: open the store, start the usage writer, build the router, serve until a signal, then
//! drain. The order of shutdown is what guarantees that no usage event is lost on a clean stop:
//! stop accepting → finish in-flight requests (bounded by the grace period) → drain the usage
//! queue → close the database.

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    auth::{vault::MasterKey, AuthLimits, Authenticator, Limits},
    config::Config,
    domain::PriceTable,
    http::{self, extract::BodyLimit, AppState},
    metrics::Metrics,
    providers::Registry,
    service::{moderation::Moderator, provider_keys::ProviderKeys, usage},
    store::{self, Store},
};

pub struct App {
    state: AppState,
    tracker: TaskTracker,
    stop_background: CancellationToken,
    shutdown_grace: Duration,
    drain_delay: Duration,
    connection_limits: http::server::ConnectionLimits,
}

impl App {
    /// Connects to the database (migrating it if configured) and starts background work.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let store = open_store(config).await?;
        prepare_schema(store.as_ref(), config).await?;
        let registry = Registry::from_config(&config.providers)
            .context("building the provider registry")?
            .with_routes(&config.routes)
            .context("checking [routes]")?;
        Self::with_parts(config, store, Arc::new(registry))
    }

    pub fn with_parts(config: &Config, store: Arc<dyn Store>, registry: Arc<Registry>) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new());
        // Validated with the rest of the configuration; a key that will not parse here still
        // stops the start rather than turning projects' own keys off.
        let master_key = config
            .auth
            .master_key
            .as_ref()
            .map(MasterKey::parse)
            .transpose()
            .map_err(|problem| anyhow::anyhow!("auth.master_key: {problem}"))?;
        let moderation = match &config.moderation {
            Some(moderation) => Some(Arc::new(
                Moderator::new(moderation, &config.providers, metrics.clone()).context("setting up moderation")?,
            )),
            None => None,
        };
        let tracker = TaskTracker::new();
        let stop_background = CancellationToken::new();
        let prices = Arc::new(PriceTable::new(config.prices.clone()));
        let usage = usage::spawn_writer(
            store.clone(),
            metrics.clone(),
            prices.clone(),
            usage::BatchPolicy {
                size: config.usage.batch_size,
                linger: Duration::from_millis(config.usage.flush_interval_ms),
                max_queue: config.usage.max_queue,
            },
            &tracker,
            stop_background.clone(),
        );
        let store_for_keys = store.clone();
        let auth = Arc::new(Authenticator::new(
            store.clone(),
            config.auth.admin_token.clone(),
            AuthLimits {
                cache_ttl: Duration::from_secs(config.auth.cache_ttl_secs),
                max_failures_per_minute: config.auth.max_failures_per_minute,
                outage_grace: Duration::from_secs(config.auth.outage_grace_secs),
            },
            config.auth.url_signing_secret.as_ref(),
        ));
        let limits = Arc::new(Limits::new(
            store.clone(),
            prices,
            config.auth.max_concurrent_per_key,
            Duration::from_secs(config.auth.lease_secs),
            tracker.clone(),
        ));
        let openapi_json = serde_json::to_vec(&http::openapi()).unwrap_or_default().into();
        let state = AppState::new(http::State {
            store,
            registry,
            auth,
            limits,
            usage,
            metrics,
            body_limit: BodyLimit {
                bytes: config.server.max_body_bytes,
                read_timeout: Duration::from_secs(config.server.body_read_timeout_secs),
            },
            requests: Arc::new(tokio::sync::Semaphore::new(config.server.max_concurrent_requests)),
            // Validated with the rest of the configuration.
            trusted_proxies: config.trusted_proxies().unwrap_or_default().into(),
            openapi_json,
            conversation: config.conversation,
            facades: Arc::new(config.facades.clone()),
            public_url: config.server.public_url.as_deref().map(Arc::from),
            sockets: Arc::new(http::ws::Sockets::new(config.server.max_websockets)),
            draining: CancellationToken::new(),
            moderation,
            provider_keys: Arc::new(ProviderKeys::new(
                store_for_keys,
                master_key,
                Duration::from_secs(config.auth.cache_ttl_secs),
            )),
        });
        let connection_limits = http::server::ConnectionLimits {
            header_read_timeout: Duration::from_secs(config.server.header_read_timeout_secs),
            write_timeout: Duration::from_secs(config.server.write_timeout_secs),
            max_connections: config.server.max_connections,
        };
        Ok(Self {
            state,
            tracker,
            stop_background,
            shutdown_grace: Duration::from_secs(config.server.shutdown_grace_secs),
            drain_delay: Duration::from_secs(config.server.drain_delay_secs),
            connection_limits,
        })
    }

    pub fn backend(&self) -> store::Backend {
        self.state.store.backend()
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully: `/readyz` turns 503 at once,
    /// requests are still served for the drain delay (while load balancers notice), then the
    /// listener closes — new connections are refused — and in-flight requests get the grace
    /// period to finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = self.router();
        let stopping = CancellationToken::new();
        let signal = stopping.clone();
        let server = http::server::serve(listener, router, self.connection_limits, stopping, self.shutdown_grace);
        let (draining, delay) = (self.state.draining.clone(), self.drain_delay);
        let (sockets, grace) = (self.state.sockets.clone(), self.shutdown_grace);
        let requested = async move {
            shutdown.await;
            draining.cancel();
            if !delay.is_zero() {
                tracing::info!(delay_secs = delay.as_secs(), "shutdown requested; unready, still serving");
                tokio::time::sleep(delay).await;
            }
            tracing::info!("no longer accepting connections; finishing in-flight requests");
            signal.cancel();
            // WebSockets finish their command and close within the same grace as requests, so
            // that a stop takes at most the drain delay and one grace period.
            sockets.close(grace).await;
        };
        tokio::join!(server, requested);
        self.drain().await;
        Ok(())
    }

    /// Stops background work after writing everything queued, then closes the database.
    pub async fn drain(self) {
        // Sockets first: their last commands are metered before the usage writer stops.
        self.state.sockets.close(self.shutdown_grace).await;
        self.stop_background.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.state.store.close().await;
        tracing::info!("shutdown complete");
    }
}

pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let backend = store::backend_of(&config.database.url);
    store::connect(&config.database.url, config.database.max_connections)
        .await
        .with_context(|| format!("connecting to the {backend:?} database at database.url"))
}

/// Migrates the database when `database.migrate_on_start` says so; otherwise makes sure someone
/// has (`speechgate migrate`, e.g. a Job before a rollout), so that a replica refuses to start
/// on an old schema instead of failing request by request with SQL errors.
pub async fn prepare_schema(store: &dyn Store, config: &Config) -> anyhow::Result<()> {
    if config.database.migrate_on_start {
        return store.migrate().await.context("applying database migrations");
    }
    let pending = store.pending_migrations().await.context("reading the database's applied migrations")?;
    if pending.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "the database schema is behind this build ({} migration(s) pending: {}); run `speechgate migrate` \
         first, or set database.migrate_on_start = true",
        pending.len(),
        pending.join(", ")
    )
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
