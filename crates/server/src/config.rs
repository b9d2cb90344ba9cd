//! Configuration from flags and the environment, resolved into [`Settings`].

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

/// Shortest accepted JWT secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// A secret that never shows in logs or debug output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Flags and environment variables of `finance-server`.
#[derive(Debug, Parser)]
#[command(
    name = "finance-server",
    version,
    about = "The finance expense tracker's JSON API server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Database URL: sqlite:PATH, postgres://USER@HOST/DB or mysql://USER@HOST/DB (MySQL or MariaDB). Default: a SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// A read replica of the PostgreSQL primary, for lists, summaries, trends
    /// and exports (a read falls back to the primary while the replica is
    /// behind the user's last write, or down).
    #[arg(long, env = "DATABASE_READ_URL")]
    pub database_read_url: Option<String>,

    /// Redis URL for the shared cache, login limits and background-import queue. Default: all in-process.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "finance:")]
    pub redis_key_prefix: String,

    /// Deadline of one Redis command, in milliseconds.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 50)]
    pub redis_timeout_ms: u64,

    /// How long a cached summary is kept, in seconds; 0 turns the cache off.
    #[arg(long, env = "CACHE_TTL_SECONDS", default_value_t = 60)]
    pub cache_ttl_seconds: u64,

    /// Secret that signs access tokens (at least 32 bytes). Default: generated once and kept in the data directory.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// Lifetime of an access token, in seconds.
    #[arg(long, env = "TOKEN_TTL_SECONDS", default_value_t = 86_400)]
    pub token_ttl_seconds: u64,

    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Directory of the default SQLite file and the generated secret.
    #[arg(long, env = "DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Failed logins allowed per email within the window.
    #[arg(long, env = "LOGIN_MAX_FAILURES_PER_EMAIL", default_value_t = 5)]
    pub login_max_failures_per_email: u32,

    /// Failed logins allowed per client address within the window.
    #[arg(long, env = "LOGIN_MAX_FAILURES_PER_ADDRESS", default_value_t = 20)]
    pub login_max_failures_per_address: u32,

    /// The sliding window of failed logins, in seconds.
    #[arg(long, env = "LOGIN_WINDOW_SECONDS", default_value_t = 900)]
    pub login_window_seconds: u64,

    /// Reverse proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For is believed.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// A request running longer is cancelled with 503, in seconds.
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,

    /// A client must send its request headers within this many seconds,
    /// and the first byte of a new connection too.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10)]
    pub header_read_timeout_seconds: u64,

    /// A connection that sends and receives nothing for this many seconds
    /// is closed (kept above REQUEST_TIMEOUT_SECONDS).
    #[arg(long, env = "IDLE_TIMEOUT_SECONDS", default_value_t = 75)]
    pub idle_timeout_seconds: u64,

    /// Connections open at once; past it a new one is answered 503 and closed.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 8192)]
    pub max_connections: usize,

    /// File imports read at once on this instance (one per user) [default: the cores].
    #[arg(long, env = "FILE_IMPORT_CONCURRENCY")]
    pub file_import_concurrency: Option<usize>,

    /// File imports one user may have under way at once on this instance.
    #[arg(long, env = "FILE_IMPORTS_PER_USER", default_value_t = 1)]
    pub file_imports_per_user: usize,

    /// Most database connections [default: 10 on PostgreSQL; on SQLite,
    /// readers, twice the cores].
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS")]
    pub database_max_connections: Option<u32>,

    /// Password hashes computed at once [default: half the cores, at least one].
    #[arg(long, env = "PASSWORD_CONCURRENCY")]
    pub password_concurrency: Option<usize>,

    /// A background import whose worker has not been heard of for this many
    /// seconds is given to another worker.
    #[arg(long, env = "JOB_VISIBILITY_TIMEOUT_SECONDS", default_value_t = 30)]
    pub job_visibility_timeout_seconds: u64,
}

/// Deadlines that keep slow or stuck clients from holding the server.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// A request still running after this is cancelled (its transaction rolls back) with 503.
    pub request_timeout: Duration,
    /// A client must send its request headers within this, and a new
    /// connection its first byte.
    pub header_read_timeout: Duration,
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// File imports read at once.
    pub file_imports: usize,
    /// Of them, one user's.
    pub file_imports_per_user: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_connections: 8192,
            file_imports: default_file_imports(),
            file_imports_per_user: 1,
        }
    }
}

/// What to do; serving is the default.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the API (the default), running background imports in-process too.
    Serve {
        /// Run background imports in this process (the default; for a single machine).
        #[arg(long, overrides_with = "no_worker")]
        with_worker: bool,
        /// Leave background imports to `finance-server worker` processes (needs REDIS_URL).
        #[arg(long)]
        no_worker: bool,
    },
    /// Run background imports only, taking jobs from Redis (needs REDIS_URL).
    Worker,
    /// Apply the database migrations and exit (servers apply them too at
    /// start-up; this lets a deployment run them once, before any server).
    Migrate,
    /// Fill the database with users and realistic expenses (for trying and benchmarking),
    /// then print each user's email; their password is `seeded password`.
    Seed {
        /// Users to create.
        #[arg(long, default_value_t = 1)]
        users: u32,
        /// Expenses per user, spread over the last three years.
        #[arg(long, default_value_t = 1000)]
        expenses: u64,
    },
}

/// Everything the server needs to start, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub database_read_url: Option<String>,
    pub redis: Option<crate::cache::RedisSettings>,
    pub cache_ttl: Duration,
    pub jwt_secret: Secret,
    pub token_ttl: Duration,
    pub pool: crate::store::PoolSettings,
    /// Concurrent password hashes; defaults to half the cores.
    pub password_concurrency: usize,
    pub login_limits: crate::auth::LoginLimits,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub limits: ServerLimits,
    /// How long a silent worker keeps a background import.
    pub job_visibility: Duration,
}

impl Cli {
    /// Fills in the defaults: the data directory, the SQLite file and the secret file.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let data_dir = self.data_dir.or_else(platform_data_dir);
        let private_data_dir = || -> anyhow::Result<PathBuf> {
            let dir = data_dir
                .clone()
                .context("cannot find a home directory for the data; set DATA_DIR")?;
            create_private_dir(&dir)?;
            Ok(dir)
        };
        let database_url = match self.database_url {
            Some(url) => url,
            None => format!(
                "sqlite:{}",
                private_data_dir()?.join("finance.db").display()
            ),
        };
        let jwt_secret = match self.jwt_secret {
            Some(secret) => secret,
            None => load_or_create_secret(&private_data_dir()?.join("jwt-secret"))?,
        };
        if jwt_secret.expose().len() < MIN_SECRET_BYTES {
            bail!(
                "JWT_SECRET is {} bytes; it must be at least {MIN_SECRET_BYTES} (try: openssl rand -hex 32)",
                jwt_secret.expose().len()
            );
        }
        let cache_ttl = Duration::from_secs(self.cache_ttl_seconds);
        let max_connections = self
            .database_max_connections
            .unwrap_or_else(|| default_max_connections(&database_url))
            .max(1);
        Ok(Settings {
            database_url,
            database_read_url: self.database_read_url,
            redis: self.redis_url.map(|url| crate::cache::RedisSettings {
                url,
                key_prefix: self.redis_key_prefix,
                ttl: cache_ttl,
                timeout: Duration::from_millis(self.redis_timeout_ms.max(1)),
            }),
            cache_ttl,
            jwt_secret,
            token_ttl: Duration::from_secs(self.token_ttl_seconds.max(1)),
            pool: crate::store::PoolSettings {
                max_connections,
                ..Default::default()
            },
            password_concurrency: self
                .password_concurrency
                .unwrap_or_else(default_password_concurrency)
                .max(1),
            login_limits: crate::auth::LoginLimits {
                per_email: self.login_max_failures_per_email.max(1),
                per_address: self.login_max_failures_per_address.max(1),
                window: Duration::from_secs(self.login_window_seconds.max(1)),
            },
            trusted_proxies: self.trusted_proxies,
            limits: ServerLimits {
                request_timeout: Duration::from_secs(self.request_timeout_seconds.max(1)),
                header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds.max(1)),
                // A request running to its timeout must not be cut off as idle.
                idle_timeout: Duration::from_secs(
                    self.idle_timeout_seconds
                        .max(self.request_timeout_seconds.saturating_add(5)),
                ),
                max_connections: self.max_connections.max(1),
                file_imports: self
                    .file_import_concurrency
                    .unwrap_or_else(default_file_imports)
                    .max(1),
                file_imports_per_user: self.file_imports_per_user.max(1),
            },
            job_visibility: Duration::from_secs(self.job_visibility_timeout_seconds.max(1)),
        })
    }
}

/// One file import per core: each holds its file in memory while it is read.
fn default_file_imports() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// An address (`10.0.0.1`) or a network (`10.0.0.0/8`).
fn parse_proxy(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not an IP address or CIDR network"))
}

/// SQLite's readers are busy on the CPU, never waiting on a server: more
/// than two per core only adds page caches (each its own 1 MiB).
fn default_max_connections(database_url: &str) -> u32 {
    if database_url.starts_with("sqlite:") {
        std::thread::available_parallelism()
            .map_or(2, |n| u32::try_from(n.get() * 2).unwrap_or(u32::MAX))
    } else {
        10
    }
}

/// Half the cores hash passwords at most: a flood of logins (each hash is
/// 19 MiB and tens of milliseconds of CPU) leaves the other half to every
/// other request.
pub fn default_password_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// The platform's data directory (`~/.local/share/finance` on Linux).
fn platform_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "finance").map(|dirs| dirs.data_dir().to_path_buf())
}

/// The data directory, created 0700, and made 0700 if it exists already.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make data directory {} private", dir.display()))
}

/// Reads the kept secret, or makes a random 256-bit one and keeps it (mode 0600).
fn load_or_create_secret(path: &Path) -> anyhow::Result<Secret> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read_to_string(path) {
        Ok(secret) => return Ok(Secret::new(secret.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let bytes: [u8; 32] = rand::random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // create_new: two servers starting at once cannot both write a secret.
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())?;
            file.sync_all()?;
            tracing::info!(path = %path.display(), "generated a new token signing secret");
            Ok(Secret::new(secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(Secret::new(std::fs::read_to_string(path)?.trim()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
}

/// A URL with its password replaced by `***`, for logs.
pub fn mask_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords() {
        assert_eq!(
            mask_url("postgres://u:hunter2@db/x"),
            "postgres://u:***@db/x"
        );
        assert_eq!(
            mask_url("redis://:pw@127.0.0.1:6379"),
            "redis://:***@127.0.0.1:6379"
        );
        assert_eq!(mask_url("sqlite:/tmp/x.db"), "sqlite:/tmp/x.db");
    }

    #[test]
    fn secret_is_generated_once_with_mode_0600() -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("finance-secret-{}", uuid::Uuid::new_v4()));
        create_private_dir(&dir)?;
        let path = dir.join("jwt-secret");
        let first = load_or_create_secret(&path)?;
        let second = load_or_create_secret(&path)?;
        assert_eq!(first.expose(), second.expose());
        assert_eq!(first.expose().len(), 64);
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777,
            0o600
        );
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[test]
    fn an_existing_data_directory_is_made_private() -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("finance-data-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        create_private_dir(&dir)?;
        assert_eq!(std::fs::metadata(&dir)?.permissions().mode() & 0o777, 0o700);
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[test]
    fn short_secret_is_refused() {
        let cli = Cli::parse_from([
            "finance-server",
            "--jwt-secret",
            "short",
            "--database-url",
            "sqlite:x.db",
        ]);
        let err = cli
            .resolve()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("at least 32"), "{err}");
    }
}
