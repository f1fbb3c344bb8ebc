//! The TOML configuration from anything: parsed, or refused naming what is wrong — never a
//! panic. Valid example configurations with a line changed or dropped, and arbitrary text.
//! `make fuzz` runs many more cases (PROPTEST_CASES).

use std::path::Path;

use deepalert_local::Config;
use proptest::prelude::*;

fn examples() -> Vec<String> {
    [
        "deepalert.toml",
        "cloud.toml",
        "builtins.toml",
        "responses.toml",
    ]
    .iter()
    .map(|f| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(f);
        std::fs::read_to_string(path).unwrap()
    })
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_parsed_or_refused_with_a_message(text in ".{0,400}") {
        if let Err(e) = Config::parse(&text, Path::new("fuzz.toml")) {
            prop_assert!(e.to_string().contains("fuzz.toml"), "{e}");
        }
    }

    #[test]
    fn example_configs_with_a_line_changed_are_parsed_or_refused(
        which in 0usize..4, line in any::<prop::sample::Index>(), replacement in prop_oneof![
            Just(String::new()),
            Just("max_concurrent_jobs = 0".to_string()),
            Just("inspection_delay = \"soon\"".to_string()),
            Just("[[flow]]".to_string()),
            Just("steps = []".to_string()),
            Just("preset = \"nope\"".to_string()),
            Just("notify = 3".to_string()),
            "[a-z_]{1,12} = \"[ -~]{0,12}\"",
            "[ -~]{0,30}",
        ],
    ) {
        let text = &examples()[which];
        let mut lines: Vec<&str> = text.lines().collect();
        let i = line.index(lines.len());
        lines[i] = &replacement;
        let changed = lines.join("\n");
        if let Err(e) = Config::parse(&changed, Path::new("fuzz.toml")) {
            prop_assert!(e.to_string().contains("fuzz.toml"), "{e}");
        }
    }
}
