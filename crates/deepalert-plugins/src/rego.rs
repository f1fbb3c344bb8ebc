//! What the Rego policy reviewer and the Rego rules share: a directory (or built-in set)
//! of `.rego` files loaded into regorus, evaluated on an input, and tested like `opa
//! test` (`test_*` rules) plus JSON fixtures in `DIR/tests/`.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no .rego file in {0}")]
    Empty(PathBuf),
    /// regorus's message names the file, line and column.
    #[error("{0}")]
    Syntax(String),
    #[error("policy evaluation failed: {0}")]
    Eval(String),
    #[error(
        "policy verdict {verdict} is not {{\"severity\": \"safe\"|\"unclassified\"|\"urgent\", \"reason\": string}}: {why}"
    )]
    BadVerdict { verdict: String, why: String },
}

#[derive(Clone, Debug)]
struct Module {
    path: PathBuf,
    package: String,
    tests: Vec<String>,
}

/// Loaded policies.
#[derive(Clone)]
pub struct PolicySet {
    engine: regorus::Engine,
    modules: Vec<Module>,
    dir: PathBuf,
}

/// One test: a `test_*` rule or a fixture file, and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    pub name: String,
    pub outcome: Result<(), String>,
}

impl PolicySet {
    /// Policies given as (file name, source): for policies built into a binary.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<Self, PolicyError> {
        if sources.is_empty() {
            return Err(PolicyError::Empty(PathBuf::from("(built-in policies)")));
        }
        let mut set = PolicySet {
            engine: regorus::Engine::new(),
            modules: Vec::new(),
            dir: PathBuf::new(),
        };
        for (name, text) in sources {
            set.add(PathBuf::from(name), text.to_string())?;
        }
        set.prepare();
        Ok(set)
    }

    /// Loads every `.rego` file of `dir` (not recursive: `tests/` holds fixtures).
    pub fn load(dir: &Path) -> Result<Self, PolicyError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| PolicyError::ReadDir {
                path: dir.to_path_buf(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rego"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(PolicyError::Empty(dir.to_path_buf()));
        }
        let mut set = PolicySet {
            engine: regorus::Engine::new(),
            modules: Vec::new(),
            dir: dir.to_path_buf(),
        };
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Read {
                path: path.clone(),
                source,
            })?;
            set.add(path, text)?;
        }
        set.prepare();
        Ok(set)
    }

    fn add(&mut self, path: PathBuf, text: String) -> Result<(), PolicyError> {
        let package = self
            .engine
            .add_policy(path.display().to_string(), text.clone())
            .map_err(|e| PolicyError::Syntax(e.to_string()))?;
        self.modules.push(Module {
            tests: test_rules(&text),
            package,
            path,
        });
        Ok(())
    }

    /// Adds `data` (a JSON object) to every evaluation.
    pub fn with_data(mut self, data: &serde_json::Value) -> Result<Self, PolicyError> {
        let value = regorus::Value::from_json_str(&data.to_string())
            .map_err(|e| PolicyError::Eval(format!("data: {e}")))?;
        self.engine
            .add_data(value)
            .map_err(|e| PolicyError::Eval(format!("data: {e}")))?;
        self.prepare();
        Ok(self)
    }

    /// Analyses the modules now, once: every evaluation runs on a clone of this engine, and
    /// a clone of an unprepared engine analysed them all again (a third of a review's time).
    fn prepare(&mut self) {
        // Any evaluation prepares the engine; a policy that cannot be evaluated fails
        // again, with its message, when it is used.
        let _ = self.engine.eval_query("true".to_string(), false);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Evaluates `rule` (e.g. `data.deepalert.verdict`) on `input`. `Ok(None)`: the rule is
    /// undefined, or no module defines it.
    pub fn eval<T: serde::Serialize + ?Sized>(
        &self,
        rule: &str,
        input: &T,
    ) -> Result<Option<serde_json::Value>, PolicyError> {
        let mut engine = self.engine.clone();
        engine.set_input(
            crate::rego_input::to_rego(input)
                .map_err(|e| PolicyError::Eval(format!("not valid input: {e}")))?,
        );
        let value = match engine.eval_rule(rule.to_string()) {
            Ok(v) => v,
            Err(e) if e.to_string().contains("not a valid rule path") => return Ok(None),
            Err(e) => return Err(PolicyError::Eval(e.to_string())),
        };
        if value == regorus::Value::Undefined {
            return Ok(None);
        }
        let json = serde_json::from_str(
            &value
                .to_json_str()
                .map_err(|e| PolicyError::Eval(e.to_string()))?,
        )
        .map_err(|e| PolicyError::Eval(e.to_string()))?;
        Ok(Some(json))
    }

    /// Runs every `test_*` rule (true passes).
    pub fn run_test_rules(&self) -> Vec<TestCase> {
        let mut cases = Vec::new();
        for module in &self.modules {
            for rule in &module.tests {
                let name = format!(
                    "{}: data.{}.{rule}",
                    module.path.display(),
                    module.package.trim_start_matches("data.")
                );
                let path = format!("{}.{rule}", qualified(&module.package));
                let mut engine = self.engine.clone();
                let outcome = match engine.eval_rule(path) {
                    Ok(regorus::Value::Bool(true)) => Ok(()),
                    Ok(regorus::Value::Undefined) => {
                        Err("undefined (a condition did not hold)".to_string())
                    }
                    Ok(other) => Err(format!("evaluated to {other}, not true")),
                    Err(e) => Err(e.to_string()),
                };
                cases.push(TestCase { name, outcome });
            }
        }
        cases
    }

    /// The fixture files `DIR/tests/*.json`, sorted.
    pub fn fixtures(&self) -> Result<Vec<PathBuf>, PolicyError> {
        let dir = self.dir.join("tests");
        if !dir.is_dir() {
            return Ok(vec![]);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|source| PolicyError::ReadDir {
                path: dir.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        Ok(files)
    }
}

fn qualified(package: &str) -> String {
    if package.starts_with("data.") {
        package.to_string()
    } else {
        format!("data.{package}")
    }
}

/// Names of rules whose head starts a line with `test_`.
fn test_rules(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            name.starts_with("test_").then_some(name)
        })
        .collect();
    out.dedup();
    out
}
