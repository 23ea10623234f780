//! The command line: `speechgate [serve] | migrate | keys create|list|revoke | openapi`.

use std::{io::Write, path::PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::{
    app::{self, App},
    config::Config,
    domain::{ApiKey, KeyLimits, Scope},
    http,
    service::keys,
    telemetry,
};

#[derive(Parser)]
#[command(name = "speechgate", version, about = "A self-hosted, unified text-to-speech gateway")]
struct Cli {
    /// Configuration file (optional; every field can also be set as SPEECHGATE__SECTION__KEY).
    #[arg(long, global = true, env = crate::config::CONFIG_FILE_VAR, default_value = "speechgate.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve {
        /// Do not apply pending migrations at start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage API keys directly in the database.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it. The secret is shown only this once.
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated scopes: speech, voices, admin, credentials.
        #[arg(long, value_delimiter = ',', default_value = "speech,voices", value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// Expiry time, RFC 3339 (e.g. 2027-01-01T00:00:00Z).
        #[arg(long)]
        expires_at: Option<DateTime<Utc>>,
        /// Requests per minute (shared by replicas on PostgreSQL).
        #[arg(long)]
        rate_limit_per_minute: Option<u32>,
        /// The key's requests skip content moderation (`[moderation]`).
        #[arg(long)]
        moderation_exempt: bool,
        /// Characters to synthesise per minute (shared by replicas on PostgreSQL).
        #[arg(long)]
        characters_per_minute: Option<u32>,
        /// Requests in progress at once (shared by replicas on PostgreSQL).
        #[arg(long)]
        max_concurrent: Option<u32>,
        /// Characters per UTC calendar month.
        #[arg(long)]
        monthly_character_budget: Option<u64>,
        /// US dollars per UTC calendar month, priced by `[prices]`.
        #[arg(long)]
        monthly_spend_limit_usd: Option<f64>,
        /// The project the key acts for (its voices, jobs and provider keys); a new project
        /// of its own when absent.
        #[arg(long)]
        project: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id.
    Revoke { id: String },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s.trim()).ok_or_else(|| format!("unknown scope {s:?}; expected speech, voices, admin or credentials"))
}

pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve { no_migrate: false });
    if let Command::Openapi = command {
        let doc = http::openapi().to_pretty_json().context("serializing the OpenAPI document")?;
        writeln!(std::io::stdout(), "{doc}")?;
        return Ok(());
    }
    let mut config = Config::load(&cli.config)?;
    telemetry::init(&config.log);
    match command {
        Command::Serve { no_migrate } => {
            config.database.migrate_on_start &= !no_migrate;
            // The database (and its schema) first: a replica that cannot serve never listens.
            let app = App::build(&config).await?;
            let listener = tokio::net::TcpListener::bind(&config.server.listen)
                .await
                .with_context(|| format!("binding server.listen = {}", config.server.listen))?;
            tracing::info!(address = %listener.local_addr()?, backend = ?app.backend(), "speechgate listening");
            app.serve(listener, app::shutdown_signal()).await
        }
        Command::Migrate => {
            let store = app::open_store(&config).await?;
            let pending = store.pending_migrations().await.context("reading the database's applied migrations")?;
            store.migrate().await.context("applying database migrations")?;
            store.close().await;
            match pending.len() {
                0 => writeln!(std::io::stdout(), "the database schema is up to date")?,
                n => writeln!(std::io::stdout(), "applied {n} migration(s): {}", pending.join(", "))?,
            }
            Ok(())
        }
        Command::Keys { command } => keys_command(&config, command).await,
        Command::Openapi => Ok(()),
    }
}

async fn keys_command(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    let store = app::open_store(config).await?;
    app::prepare_schema(store.as_ref(), config).await?;
    let mut out = std::io::stdout().lock();
    match command {
        KeysCommand::Create {
            name,
            scopes,
            expires_at,
            rate_limit_per_minute,
            characters_per_minute,
            max_concurrent,
            monthly_character_budget,
            monthly_spend_limit_usd,
            moderation_exempt,
            project,
            json,
        } => {
            let limits = KeyLimits {
                rate_limit_per_minute,
                characters_per_minute,
                max_concurrent,
                monthly_character_budget,
                monthly_spend_limit_usd,
            };
            let created = keys::create(
                store.as_ref(),
                keys::CreateKey { name, project_id: project, scopes, expires_at, limits, moderation_exempt },
            )
            .await
            .map_err(describe)?;
            let token = created.token.expose_secret();
            if json {
                let mut value = serde_json::to_value(&created.key)?;
                value["key"] = token.into();
                writeln!(out, "{value}")?;
            } else {
                writeln!(out, "{token}")?;
                writeln!(
                    out,
                    "id: {}  name: {}  project: {}  scopes: {}",
                    created.key.id,
                    created.key.name,
                    created.key.project_id,
                    scopes_text(&created.key)
                )?;
                writeln!(out, "Store the key now: it is not shown again.")?;
            }
        }
        KeysCommand::List { json } => {
            let keys = store.list_keys().await?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&keys)?)?;
            } else {
                writeln!(out, "{:<14} {:<24} {:<20} {:<10} LAST USED", "ID", "NAME", "SCOPES", "STATE")?;
                for key in &keys {
                    let state = if key.revoked_at.is_some() {
                        "revoked"
                    } else if key.is_expired(Utc::now()) {
                        "expired"
                    } else {
                        "active"
                    };
                    let last_used = key.last_used_at.map_or_else(|| "never".to_owned(), |t| t.to_rfc3339());
                    writeln!(
                        out,
                        "{:<14} {:<24} {:<20} {:<10} {last_used}",
                        key.id,
                        key.name,
                        scopes_text(key),
                        state
                    )?;
                }
            }
        }
        KeysCommand::Revoke { id } => {
            let key = keys::revoke(store.as_ref(), &id).await.map_err(describe)?;
            writeln!(out, "revoked {}", key.id)?;
        }
    }
    store.close().await;
    Ok(())
}

fn scopes_text(key: &ApiKey) -> String {
    key.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

/// Validation failures name their fields on the command line too.
fn describe(err: crate::service::ServiceError) -> anyhow::Error {
    match err {
        crate::service::ServiceError::Validation(fields) => anyhow::anyhow!(
            "{}",
            fields.iter().map(|f| format!("{:?}: {}", f.path, f.message)).collect::<Vec<_>>().join("; ")
        ),
        other => other.into(),
    }
}
