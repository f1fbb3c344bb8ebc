//! Packages reviewer policies into the binary: `DEEPALERT_POLICY_DIR` names a directory of
//! `.rego` files (`make build` sets it from `ReviewerPolicies` in stack.jsonnet). Unset:
//! no policies are built in.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEEPALERT_POLICY_DIR");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("policies.rs");
    let mut entries = Vec::new();
    if let Some(dir) = std::env::var_os("DEEPALERT_POLICY_DIR").filter(|d| !d.is_empty()) {
        let dir = Path::new(&dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("DEEPALERT_POLICY_DIR={}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rego"))
            .collect();
        files.sort();
        if files.is_empty() {
            panic!("DEEPALERT_POLICY_DIR={} holds no .rego file", dir.display());
        }
        for f in files {
            println!("cargo:rerun-if-changed={}", f.display());
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let text =
                std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            entries.push(format!("({name:?}, {text:?})"));
        }
    }
    std::fs::write(
        &out,
        format!("/// Reviewer policies built into this binary.\npub const POLICIES: &[(&str, &str)] = &[{}];\n", entries.join(", ")),
    )
    .expect("write policies.rs");
}
