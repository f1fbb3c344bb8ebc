//! `deepalert`: run the pipeline on one machine (`serve`), send it alerts (`send`) and
//! cloud events (`events send`), read its reports (`reports`), and test reviewer policies
//! (`policy`), rules (`rules`) and flows (`flows`).

#[cfg(feature = "aws")]
mod aws;
mod client;
mod flows;
mod policy;
mod rules;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// glibc malloc took a fifth of `deepalert serve`'s CPU under load (memory freed on another
// thread than the one that allocated it: every job hands its data across threads).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "deepalert",
    version,
    about = "Security-alert response: aggregate, inspect, review, emit"
)]
struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `deepalert_core=debug`.
    #[arg(long, global = true, env = "DEEPALERT_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline in this process, with the HTTP API.
    Serve(serve::ServeArgs),
    /// Post alert files (one alert, or an array of alerts, per file) to a running server.
    Send {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Test or try a directory of Rego reviewer policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Test or try rules (cloud events → alerts).
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Check response flows as deployed on AWS.
    Flows {
        #[command(subcommand)]
        command: FlowsCommand,
    },
    /// Post cloud event files (an EventBridge event, an array of them, or a CloudTrail log
    /// file, gzipped or not) to a running server.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// The deepalert stack on AWS (`make deploy`'s).
    Aws {
        #[command(subcommand)]
        command: AwsCommand,
    },
    /// List or show reports of a running server.
    Reports {
        #[command(subcommand)]
        command: ReportsCommand,
        #[command(flatten)]
        server: client::ServerArgs,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Run the policies' test_* rules and the fixtures in DIR/tests/*.json; exit 1 if any fails.
    Test { dir: PathBuf },
    /// Print the verdict for a report (a report JSON file, or a fixture with "report").
    Eval { dir: PathBuf, report: PathBuf },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Run a directory of Rego rules' test_* rules and its tests/*.json fixtures
    /// ({"event", "expect": [alerts]}); exit 1 if any fails.
    Test { dir: PathBuf },
    /// Print what the rules would make of the events in files (trail files of any size,
    /// gzipped or not), and a summary; storing nothing. RULES is a configuration file (its
    /// [[rule]]s and [findings]) or a directory of Rego rules.
    Eval(rules::EvalArgs),
}

#[derive(Subcommand)]
enum FlowsCommand {
    /// Check a flows document (JSON: {"flows", "notifiers", "secrets"}, what `make deploy`
    /// writes from stack.jsonnet) as the flow runner does at its start; print its flows,
    /// notifiers and the IAM actions they need. Exit 1 naming what is wrong.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum AwsCommand {
    /// The stack's dead-letter queues (alert, dispatch, inspection, event): what is in
    /// them and why, and moving messages back.
    #[cfg(feature = "aws")]
    Dlq {
        #[command(subcommand)]
        command: aws::DlqCommand,
    },
    /// Without the `aws` feature (`make serve`'s build), the AWS commands are not built in.
    #[cfg(not(feature = "aws"))]
    #[command(external_subcommand)]
    Other(Vec<String>),
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Post the files' events to POST /api/v1/events (large files in parts).
    Send {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ReportsCommand {
    /// Newest first.
    List {
        /// new, more or published
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print the raw JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one report as JSON.
    Show { id: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|e| {
        eprintln!(
            "deepalert: --log {:?} is not a valid filter ({e}); using info",
            cli.log
        );
        tracing_subscriber::EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("deepalert: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Send { files, server } => client::send(&server, &files).await,
            Command::Policy { command } => match command {
                PolicyCommand::Test { dir } => policy::test(&dir),
                PolicyCommand::Eval { dir, report } => policy::eval(&dir, &report),
            },
            Command::Rules { command } => match command {
                RulesCommand::Test { dir } => rules::test(&dir),
                RulesCommand::Eval(args) => rules::eval(&args),
            },
            Command::Flows { command } => match command {
                FlowsCommand::Check { file } => flows::check(&file).await,
            },
            Command::Events { command, server } => match command {
                EventsCommand::Send { files } => rules::send(&server, &files).await,
            },
            Command::Aws { command } => match command {
                #[cfg(feature = "aws")]
                AwsCommand::Dlq { command } => aws::dlq(command).await,
                #[cfg(not(feature = "aws"))]
                AwsCommand::Other(args) => Err(format!(
                    "deepalert aws {}: this deepalert is built without the aws feature (make serve's build); build it with `cargo build -p deepalert-cli` (default features) for `deepalert aws`",
                    args.join(" ")
                )),
            },
            Command::Reports { command, server } => match command {
                ReportsCommand::List {
                    status,
                    limit,
                    json,
                } => client::list(&server, status.as_deref(), limit, json).await,
                ReportsCommand::Show { id } => client::show(&server, &id).await,
            },
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("deepalert: {e}");
            ExitCode::FAILURE
        }
    }
}
