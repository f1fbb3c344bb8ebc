//! Packages reviewer policies into the binary: `DEEPALERT_POLICY_DIR` names a directory of
//! `.rego` files (`make build` sets it from `ReviewerPolicies` in stack.jsonnet).

fn main() {
    deepalert_build::embed_policies("DEEPALERT_POLICY_DIR", "policies.rs");
}
