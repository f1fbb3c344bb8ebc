//! `deepalert serve`: `[reviewer] command = ["target/release/example-reviewer"]`.
//! Lambda: set its ARN as ReviewerLambdaArn in stack.jsonnet.
#[tokio::main]
async fn main() -> Result<(), deepalert_sdk::Error> {
    deepalert_sdk::run_reviewer(deepalert_examples::review).await
}
