//! `deepalert serve`: `[[emitter]] command = ["target/release/example-emitter"]`.
//! Lambda: subscribe to the report topic. See examples/rust/README.md.
#[tokio::main]
async fn main() -> Result<(), deepalert_sdk::Error> {
    deepalert_sdk::run_emitter(deepalert_examples::emit).await
}
