//! Packages Rego rules into the binary: `DEEPALERT_RULE_POLICY_DIR` names a directory of
//! `.rego` files (`make build` sets it from the `policies` rule of `Rules` in stack.jsonnet).

fn main() {
    deepalert_build::embed_policies("DEEPALERT_RULE_POLICY_DIR", "rule_policies.rs");
}
