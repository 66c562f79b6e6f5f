//! `clusterctl`: the command line of clusterm. Tables for people, `--json` for scripts,
//! a progress bar while waiting on a job (`--wait`), `job get active --follow` to stream
//! a job log, and shell completions (`clusterctl completions bash`). Any error exits
//! non-zero with a one-line message.

mod output;
mod wait;

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use clusterm_examples::client::{Client, ClientError};
use serde_json::{Value, json};

/// Manage the nodes of a clusterm cluster.
#[derive(Debug, Parser)]
#[command(name = "clusterctl", version, about)]
struct Cli {
    /// The daemon's URL (`http://host:port` or `host:port`).
    #[arg(
        long,
        short = 'u',
        global = true,
        env = "CLUSTERCTL_URL",
        default_value = "http://127.0.0.1:9007"
    )]
    url: String,
    /// Bearer token, when the daemon requires one.
    #[arg(long, global = true, env = "CLUSTERCTL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, short = 'j', global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Operations on several nodes.
    #[command(subcommand)]
    Nodes(NodesCmd),
    /// Operations on one node.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Enroll hosts by address (runs the discover playbook).
    Discover {
        /// IP addresses or host names.
        #[arg(required = true)]
        addrs: Vec<String>,
        #[command(flatten)]
        opts: JobOpts,
    },
    /// Cluster-wide extra vars.
    #[command(subcommand)]
    Global(GlobalCmd),
    /// Jobs.
    #[command(subcommand)]
    Job(JobCmd),
    /// The cluster.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Options of every request that starts a job.
#[derive(Debug, Args)]
struct JobOpts {
    /// Extra vars, a JSON object (quoted).
    #[arg(long, short = 'e')]
    extra_vars: Option<String>,
    /// Wait for the job to finish, showing progress; fails when the job fails.
    #[arg(long, short = 'w')]
    wait: bool,
}

#[derive(Debug, Subcommand)]
enum NodesCmd {
    /// List every node.
    Get {
        /// Only nodes with this status (`Discovered`, `Commissioned`, ...).
        #[arg(long)]
        status: Option<String>,
    },
    /// Commission nodes under a host group.
    Commission(BatchArgs),
    /// Decommission nodes.
    Decommission(BatchArgs),
    /// Upgrade nodes, all at once or rolling.
    Update(BatchArgs),
}

#[derive(Debug, Args)]
struct BatchArgs {
    /// Node names.
    #[arg(required = true)]
    names: Vec<String>,
    /// Host group (`service-master` or `service-worker`).
    #[arg(long, short = 'g')]
    host_group: Option<String>,
    /// Upgrade in batches.
    #[arg(long)]
    rolling: bool,
    /// Nodes per batch when rolling.
    #[arg(long, default_value_t = 1, requires = "rolling")]
    batch_size: usize,
    /// Failed nodes tolerated before a roll stops.
    #[arg(long, default_value_t = 0, requires = "rolling")]
    max_failures: usize,
    #[command(flatten)]
    opts: JobOpts,
}

#[derive(Debug, Subcommand)]
enum NodeCmd {
    /// Show one node.
    Get {
        /// Node name.
        name: String,
    },
    /// Commission a node.
    Commission(NodeArgs),
    /// Decommission a node.
    Decommission(NodeArgs),
    /// Upgrade a node.
    Update(NodeArgs),
    /// Show a node's audit log.
    Events {
        /// Node name.
        name: String,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

#[derive(Debug, Args)]
struct NodeArgs {
    /// Node name.
    name: String,
    /// Host group (`service-master` or `service-worker`).
    #[arg(long, short = 'g')]
    host_group: Option<String>,
    #[command(flatten)]
    opts: JobOpts,
}

#[derive(Debug, Subcommand)]
enum GlobalCmd {
    /// Show the globals.
    Get,
    /// Replace the globals with `--extra-vars`.
    Set {
        /// The new globals, a JSON object (quoted).
        #[arg(long, short = 'e')]
        extra_vars: String,
    },
}

#[derive(Debug, Subcommand)]
enum JobCmd {
    /// Show a job: an id, `active` or `last`.
    Get {
        /// Job id, `active` or `last`.
        job: String,
        /// Stream the job's log until it ends.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// List every job.
    List,
    /// Cancel a running job.
    Cancel {
        /// Job id or `active`.
        job: String,
    },
}

#[derive(Debug, Subcommand)]
enum ClusterCmd {
    /// Show the cluster.
    Get,
}

/// A failed command: its one-line message.
#[derive(Debug)]
struct Failure(String);

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure(e.to_string())
    }
}

type Outcome = Result<(), Failure>;

fn parse_vars(text: Option<&str>) -> Result<Value, Failure> {
    match text {
        None => Ok(json!({})),
        Some(t) => {
            let v: Value = serde_json::from_str(t)
                .map_err(|e| Failure(format!("--extra-vars is not valid JSON: {e}")))?;
            if v.is_object() {
                Ok(v)
            } else {
                Err(Failure("--extra-vars must be a JSON object".into()))
            }
        }
    }
}

fn segment(s: &str) -> String {
    // Node names and job ids end up in a URL path.
    s.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' | '.' | '~' => c.to_string(),
            c => {
                let mut buf = [0u8; 4];
                c.encode_utf8(&mut buf)
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect()
            }
        })
        .collect()
}

async fn started(client: &Client, json_out: bool, answer: Value, wait: bool) -> Outcome {
    let id = answer["job"]
        .as_u64()
        .ok_or_else(|| Failure(format!("unexpected answer: {answer}")))?;
    if !wait {
        if json_out {
            output::print_json(&answer);
        } else {
            println!("job {id} started");
        }
        return Ok(());
    }
    let job = wait::until_done(client, id, !json_out).await?;
    if json_out {
        output::print_json(&job);
    } else {
        output::job(&job);
    }
    match job["status"].as_str() {
        Some("Complete") => Ok(()),
        other => Err(Failure(format!(
            "job {id} ended {}: {}",
            other.unwrap_or("?"),
            output::job_error(&job)
        ))),
    }
}

async fn batch(client: &Client, json_out: bool, action: &str, a: BatchArgs) -> Outcome {
    let mut body = json!({
        "nodes": a.names,
        "extra_vars": parse_vars(a.opts.extra_vars.as_deref())?,
    });
    if let Some(g) = a.host_group {
        body["host_group"] = json!(g);
    }
    if a.rolling {
        body["rolling"] = json!({"batch_size": a.batch_size, "max_failures": a.max_failures});
    }
    let answer = client.post(&format!("/v1/nodes:{action}"), &body).await?;
    started(client, json_out, answer, a.opts.wait).await
}

async fn one(client: &Client, json_out: bool, action: &str, a: NodeArgs) -> Outcome {
    let mut body = json!({"extra_vars": parse_vars(a.opts.extra_vars.as_deref())?});
    if let Some(g) = a.host_group {
        body["host_group"] = json!(g);
    }
    let path = format!("/v1/nodes/{}/{action}", segment(&a.name));
    let answer = client.post(&path, &body).await?;
    started(client, json_out, answer, a.opts.wait).await
}

async fn run(cli: Cli) -> Outcome {
    let client = Client::new(&cli.url, cli.token.clone());
    let json_out = cli.json;
    let show = |v: &Value, table: fn(&Value)| {
        if json_out {
            output::print_json(v)
        } else {
            table(v)
        }
    };
    match cli.command {
        Command::Nodes(NodesCmd::Get { status }) => {
            let path = match status {
                Some(s) => format!("/v1/nodes?status={}", segment(&s)),
                None => "/v1/nodes".into(),
            };
            show(&client.get(&path).await?, output::nodes);
        }
        Command::Nodes(NodesCmd::Commission(a)) => {
            batch(&client, json_out, "commission", a).await?
        }
        Command::Nodes(NodesCmd::Decommission(a)) => {
            batch(&client, json_out, "decommission", a).await?
        }
        Command::Nodes(NodesCmd::Update(a)) => batch(&client, json_out, "upgrade", a).await?,
        Command::Node(NodeCmd::Get { name }) => {
            show(
                &client.get(&format!("/v1/nodes/{}", segment(&name))).await?,
                output::node,
            );
        }
        Command::Node(NodeCmd::Commission(a)) => one(&client, json_out, "commission", a).await?,
        Command::Node(NodeCmd::Decommission(a)) => {
            one(&client, json_out, "decommission", a).await?
        }
        Command::Node(NodeCmd::Update(a)) => one(&client, json_out, "upgrade", a).await?,
        Command::Node(NodeCmd::Events { name, after, limit }) => {
            let path = format!(
                "/v1/nodes/{}/events?after={after}&limit={limit}",
                segment(&name)
            );
            show(&client.get(&path).await?, output::events);
        }
        Command::Discover { addrs, opts } => {
            let body =
                json!({"addrs": addrs, "extra_vars": parse_vars(opts.extra_vars.as_deref())?});
            let answer = client.post("/v1/discover", &body).await?;
            started(&client, json_out, answer, opts.wait).await?;
        }
        Command::Global(GlobalCmd::Get) => {
            let g = client.get("/v1/globals").await?;
            output::print_json(&g);
        }
        Command::Global(GlobalCmd::Set { extra_vars }) => {
            let g = client
                .put("/v1/globals", &parse_vars(Some(&extra_vars))?)
                .await?;
            if json_out {
                output::print_json(&g);
            } else {
                println!("globals replaced");
            }
        }
        Command::Job(JobCmd::Get { job, follow }) => {
            let path = format!("/v1/jobs/{}", segment(&job));
            let record = client.get(&path).await?;
            if follow {
                let id = record["id"].as_u64().unwrap_or_default();
                wait::follow_log(&client, id).await?;
                let record = client.get(&format!("/v1/jobs/{id}")).await?;
                show(&record, output::job);
            } else {
                show(&record, output::job);
            }
        }
        Command::Job(JobCmd::List) => show(&client.get("/v1/jobs").await?, output::jobs),
        Command::Job(JobCmd::Cancel { job }) => {
            let answer = client
                .post(&format!("/v1/jobs/{}/cancel", segment(&job)), &json!({}))
                .await?;
            if json_out {
                output::print_json(&answer);
            } else {
                println!("job {} is being cancelled", answer["job"]);
            }
        }
        Command::Cluster(ClusterCmd::Get) => {
            show(&client.get("/v1/cluster").await?, output::cluster)
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "clusterctl", &mut std::io::stdout());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("clusterctl: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    let _ = std::io::stdout().flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("clusterctl: {}", message.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
