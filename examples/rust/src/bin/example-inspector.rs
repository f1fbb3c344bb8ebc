//! `deepalert serve`: `command = ["target/release/example-inspector"]`.
//! Lambda: subscribe to the task topic; set INSPECTION_QUEUE_URL. See examples/rust/README.md.
#[tokio::main]
async fn main() -> Result<(), deepalert_sdk::Error> {
    deepalert_sdk::run_inspector("example-inspector", deepalert_examples::inspect).await
}
