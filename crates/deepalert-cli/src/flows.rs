//! `deepalert flows check`: a flows document (what `make deploy` writes from
//! stack.jsonnet into the functions' zips, `deepalert/flows.json`) checked as the flow runner checks it
//! at its start, and the IAM actions its checks and remediations need.

use std::path::Path;
use std::process::ExitCode;

use deepalert_core::flows::FlowsDocument;
use deepalert_plugins::builtin;
use deepalert_plugins::responses;
use deepalert_plugins::secrets::Secrets;
use serde_json::json;

/// Stands for every secret the document says where to find: the check builds the
/// notifiers without reading a secret.
const PLACEHOLDER_SECRET: &str = "https://deploy-check.invalid/";

/// Prints `{"flows", "notifiers", "iam_actions"}` when the document is sound; an error
/// naming the flow, step or notifier otherwise.
pub async fn check(path: &Path) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let document = FlowsDocument::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let known = document.secrets.clone();
    let secrets = Secrets::new(
        move |name| {
            known
                .contains_key(name)
                .then(|| PLACEHOLDER_SECRET.to_string())
        },
        None,
    );
    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ".".into());
    // Clients are built, never called: an email notifier on SNS needs one to exist.
    let offline = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let ctx = builtin::Context {
        base_dir: &base_dir,
        secret: &secrets,
        aws: Some(&offline),
    };
    let (set, _) = responses::from_document(&document, &ctx, false)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let summary = json!({
        "flows": set.iter().map(|(f, _)| f.name.clone()).collect::<Vec<_>>(),
        "notifiers": document.notifiers.iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
        "iam_actions": responses::iam_actions(&set),
    });
    println!("{summary:#}");
    Ok(ExitCode::SUCCESS)
}
