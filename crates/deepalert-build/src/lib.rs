//! Build scripts of the Lambda binaries that carry Rego policies (review-invoker's
//! reviewer policies, event-router's rules): the `.rego` files of the directory named by
//! an environment variable become a `&[(&str, &str)]` constant in `OUT_DIR`. `make build`
//! sets the variable from stack.jsonnet; unset, no policy is built in.

use std::path::Path;

/// Writes `OUT_DIR/<file>` declaring `pub const POLICIES: &[(&str, &str)]` (file name,
/// source) from the directory in `env_var`. Panics (failing the build) on a directory
/// that cannot be read or holds no `.rego` file.
pub fn embed_policies(env_var: &str, file: &str) {
    println!("cargo:rerun-if-env-changed={env_var}");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join(file);
    let mut entries = Vec::new();
    if let Some(dir) = std::env::var_os(env_var).filter(|d| !d.is_empty()) {
        let dir = Path::new(&dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{env_var}={}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rego"))
            .collect();
        files.sort();
        if files.is_empty() {
            panic!("{env_var}={} holds no .rego file", dir.display());
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
        format!(
            "/// Rego policies built into this binary (from {env_var} at build time).\npub const POLICIES: &[(&str, &str)] = &[{}];\n",
            entries.join(", ")
        ),
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
}
