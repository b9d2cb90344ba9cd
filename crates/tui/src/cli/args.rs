//! The command line: subcommands and their arguments.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

/// Where the server is when nothing says otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// `finance`: with no subcommand, the dashboard.
#[derive(Debug, Parser)]
#[command(
    name = "finance",
    version,
    about = "Track expenses from the terminal: a dashboard, and subcommands for scripts"
)]
pub struct Cli {
    /// Server URL [default: the stored session's, else http://127.0.0.1:8080]
    #[arg(long, env = "FINANCE_SERVER", global = true)]
    pub server: Option<String>,

    /// Directory of the stored session [default: the platform config directory]
    #[arg(long, env = "FINANCE_CONFIG_DIR", global = true)]
    pub config_dir: Option<PathBuf>,

    /// Print the server's JSON instead of a table
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Log in and store the session
    Login(AuthArgs),
    /// Create an account and store the session
    Register(AuthArgs),
    /// Forget the stored session
    Logout,
    /// Show who the stored session belongs to
    Whoami,
    /// Add an expense: finance add Groceries 42.10 --description "Weekly shop"
    Add {
        category: String,
        /// Decimal amount such as 12.50
        amount: String,
        #[arg(long)]
        description: Option<String>,
        /// YYYY-MM-DD [default: today]
        #[arg(long)]
        date: Option<NaiveDate>,
    },
    /// List expenses, newest first
    List {
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: u32,
        #[arg(long)]
        category: Option<String>,
        /// First day, YYYY-MM-DD
        #[arg(long)]
        from: Option<NaiveDate>,
        /// Last day, YYYY-MM-DD
        #[arg(long)]
        to: Option<NaiveDate>,
        /// Only expenses whose description or category contains this text (any case)
        #[arg(long, short = 'q')]
        search: Option<String>,
    },
    /// Change an expense: finance edit ID --amount 12.50 --category Food
    Edit {
        /// The expense's id (from `finance list --json`)
        id: String,
        #[arg(long)]
        category: Option<String>,
        /// Decimal amount such as 12.50
        #[arg(long)]
        amount: Option<String>,
        #[arg(long, conflicts_with = "no_description")]
        description: Option<String>,
        /// Remove the description
        #[arg(long)]
        no_description: bool,
        /// YYYY-MM-DD
        #[arg(long)]
        date: Option<NaiveDate>,
    },
    /// Delete an expense (an imported one is not imported again)
    Rm {
        /// The expense's id (from `finance list --json`)
        id: String,
    },
    /// Totals per category
    Summary {
        #[arg(long)]
        from: Option<NaiveDate>,
        #[arg(long)]
        to: Option<NaiveDate>,
    },
    /// Month-by-month totals per category
    Trend {
        /// How many months, 1 to 36
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=36))]
        months: u32,
        /// A day of the last month shown [default: today]
        #[arg(long)]
        end: Option<NaiveDate>,
    },
    /// Categories in use; `finance categories rename FROM TO` renames or merges
    Categories {
        #[command(subcommand)]
        action: Option<CategoryAction>,
    },
    /// Write every expense to standard output (CSV that `finance import csv -` reads back, or JSON)
    Export {
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
        /// First day, YYYY-MM-DD
        #[arg(long)]
        from: Option<NaiveDate>,
        /// Last day, YYYY-MM-DD
        #[arg(long)]
        to: Option<NaiveDate>,
    },
    /// Import bank transactions
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum CategoryAction {
    /// Move every expense of FROM to TO (merging into TO if it exists)
    Rename { from: String, to: String },
}

/// What every file import takes besides the file.
#[derive(Debug, Args)]
pub struct FileImportArgs {
    /// The file, or - for standard input
    pub file: PathBuf,
    /// Show what would be imported and skipped; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Import nothing if any line is bad
    #[arg(long)]
    pub strict: bool,
    /// Category of rows that have none [default: Uncategorized]
    #[arg(long)]
    pub category: Option<String>,
    /// Import in the background (no request deadline, whatever the size):
    /// progress on standard error until the import ends
    #[arg(long, conflicts_with = "dry_run")]
    pub background: bool,
    /// With --background: print the queued job and return at once
    #[arg(long, requires = "background")]
    pub no_wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImportSource {
    /// Simulated bank sync; the same seed imports nothing new twice
    Mock {
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        count: Option<u32>,
        #[arg(long, allow_negative_numbers = true)]
        seed: Option<i64>,
    },
    /// A CSV file: finance import csv bank.csv --map date=Buchung --map amount=Betrag
    Csv {
        #[command(flatten)]
        file: FileImportArgs,
        /// How to read the file, KEY=VALUE: date, amount, debit, credit,
        /// direction, out_value, description, category, id (columns by header
        /// or 1-based position); date_format, decimal (point|comma), sign
        /// (negative_out|positive_out), delimiter, encoding. Without it the
        /// header decides (this tool's own export is read as written).
        #[arg(long = "map", value_name = "KEY=VALUE")]
        map: Vec<String>,
    },
    /// An OFX or QFX file (OFX 1.x or 2.x)
    Ofx {
        #[command(flatten)]
        file: FileImportArgs,
    },
}

/// The keys `--map` accepts.
pub(super) const MAP_KEYS: [&str; 15] = [
    "date",
    "amount",
    "debit",
    "credit",
    "direction",
    "out_value",
    "description",
    "category",
    "id",
    "date_format",
    "decimal",
    "sign",
    "delimiter",
    "encoding",
    "default_category",
];

#[derive(Debug, Args)]
pub struct AuthArgs {
    /// Account email [default: asked for]
    #[arg(long)]
    pub email: Option<String>,
    /// Read the password from the first line of standard input
    #[arg(long)]
    pub password_stdin: bool,
}
