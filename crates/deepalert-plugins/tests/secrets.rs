//! Secrets the options name, from Secrets Manager and SSM Parameter Store (on moto).

use std::collections::HashMap;

use aws_sdk_ssm::types::ParameterType;
use deepalert_plugins::{SecretSource, Secrets};
use deepalert_testkit::moto::Moto;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| vars.get(k).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_secrets_manager_and_ssm() {
    let moto = Moto::start(None).await;
    let sdk = moto.sdk().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let plain = sm
        .create_secret()
        .name("deepalert/vt")
        .secret_string("vt-key-from-secrets-manager")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    sm.create_secret()
        .name("deepalert/integrations")
        .secret_string(r#"{"abuseipdb": "abuse-key", "port": 443}"#)
        .send()
        .await
        .unwrap();
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name("/deepalert/slack-webhook")
        .value("https://hooks.slack.com/services/T0/B0/secret")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();

    let secrets = Secrets::new(
        env(&[
            ("VT_API_KEY_SECRET_ARN", plain.as_str()),
            (
                "ABUSEIPDB_API_KEY_SECRET_ARN",
                "deepalert/integrations#abuseipdb",
            ),
            (
                "SLACK_WEBHOOK_URL_SSM_PARAMETER",
                "/deepalert/slack-webhook",
            ),
            ("PORT_SECRET_ARN", "deepalert/integrations#port"),
            (
                "MISSING_FIELD_SECRET_ARN",
                "deepalert/integrations#virustotal",
            ),
            ("GONE_SECRET_ARN", "deepalert/gone"),
            ("GONE_PARAM_SSM_PARAMETER", "/deepalert/gone"),
        ]),
        Some(sdk),
    );
    // By ARN, by name with a JSON field, and a decrypted SecureString.
    assert_eq!(
        secrets.secret("VT_API_KEY").await.unwrap(),
        "vt-key-from-secrets-manager"
    );
    assert_eq!(
        secrets.secret("ABUSEIPDB_API_KEY").await.unwrap(),
        "abuse-key"
    );
    assert_eq!(
        secrets.secret("SLACK_WEBHOOK_URL").await.unwrap(),
        "https://hooks.slack.com/services/T0/B0/secret"
    );

    // Each failure says which variable pointed where, never a secret's value.
    let e = secrets.secret("PORT").await.unwrap_err().to_string();
    assert!(e.contains("\"port\"") && e.contains("not a string"), "{e}");
    let e = secrets
        .secret("MISSING_FIELD")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no field \"virustotal\"") && e.contains("MISSING_FIELD_SECRET_ARN"),
        "{e}"
    );
    assert!(!e.contains("abuse-key"), "{e}");
    let e = secrets.secret("GONE").await.unwrap_err().to_string();
    assert!(
        e.contains("deepalert/gone") && e.contains("ResourceNotFound"),
        "{e}"
    );
    let e = secrets.secret("GONE_PARAM").await.unwrap_err().to_string();
    assert!(
        e.contains("/deepalert/gone") && e.contains("ParameterNotFound"),
        "{e}"
    );
}
