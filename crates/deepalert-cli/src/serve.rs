use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use deepalert_core::ports::SystemClock;
use deepalert_local::{Config, Engine, SqliteStore, server};
use deepalert_plugins::Secrets;
use tracing::{error, info};

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080, or `listen` in the config].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory [default: ./deepalert-data, or `data_dir` in the config].
    #[arg(long)]
    data: Option<PathBuf>,
    /// TOML configuration file (plug-ins, delays…); built-in defaults without it.
    #[arg(long)]
    config: Option<PathBuf>,
}

pub async fn run(args: ServeArgs) -> Result<ExitCode, String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let data_dir = args.data.clone().unwrap_or_else(|| config.data_dir());
    let api_key = std::env::var(&config.api_key_env)
        .ok()
        .filter(|k| !k.is_empty());
    if api_key.is_none() && !config.listen.ip().is_loopback() {
        return Err(format!(
            "refusing to listen on {} without an API key: set {} (see api_key_env) or listen on a loopback address",
            config.listen, config.api_key_env
        ));
    }

    // Two servers on one data directory would run every job twice.
    std::fs::create_dir_all(&data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}",
            data_dir.display()
        )
    })?;
    let lock_path = data_dir.join("deepalert.lock");
    let lock = File::create(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    lock.try_lock().map_err(|_| {
        format!(
            "another deepalert is already using {} (lock {})",
            data_dir.display(),
            lock_path.display()
        )
    })?;
    // Opened under the lock: a second server must not touch the database at all.
    let store = SqliteStore::open(&data_dir, config.durability).map_err(|e| e.to_string())?;

    let aws = if config.needs_aws() {
        Some(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
    } else {
        None
    };
    // Secrets come from the environment, or from Secrets Manager / SSM where it points.
    let secrets = Secrets::from_env(aws.clone());
    let plugins = config
        .plugins(Arc::new(store.clone()), &secrets, aws.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    let rules = Arc::new(config.rule_set().map_err(|e| e.to_string())?);
    // The crash tests' hook: die at a step boundary (see deepalert_local::faults).
    let faults = match std::env::var("DEEPALERT_FAULT") {
        Ok(spec) if !spec.is_empty() => deepalert_local::faults::Faults::parse(&spec)
            .map_err(|e| format!("DEEPALERT_FAULT: {e}"))?,
        _ => deepalert_local::faults::Faults::none(),
    };
    let engine = Engine::with_faults(
        store,
        plugins,
        config.pipeline_settings(),
        config.runtime_settings(),
        Arc::new(SystemClock),
        faults,
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    info!(
        address = %local,
        data = %data_dir.display(),
        inspectors = config.inspectors.len(),
        emitters = config.emitters.len(),
        reviewer = config.reviewer.is_some(),
        rules = ?rules.names(),
        api_key = api_key.is_some(),
        "deepalert serving on http://{local}; open http://{local}/ for the reports"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let runner = {
        let engine = engine.clone();
        let mut stop = stop_rx.clone();
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            let result = engine
                .run(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            // Without its runner the server would accept alerts it never processes.
            let _ = stop_tx.send(true);
            result
        })
    };
    let mut http_stop = stop_rx.clone();
    let http = server::serve(listener, engine, rules, api_key, async move {
        let _ = http_stop.wait_for(|s| *s).await;
    });
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("stopping: finishing running jobs; pending ones resume at next start");
        let _ = stop_tx.send(true);
    });

    let served = http.await;
    let ran = runner.await;
    drop(lock);
    if let Err(e) = served {
        return Err(format!("HTTP server failed: {e}"));
    }
    match ran {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => {
            error!(error = %e.chain(), "job runner failed");
            Err(format!("job runner failed: {}", e.chain()))
        }
        Err(e) => Err(format!("job runner crashed: {e}")),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
