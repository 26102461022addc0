#!/usr/bin/env bash
# The infrastructure test (part of `make test`):
#   1. terraform fmt -check, and validate of the module and of the example (no network when the
#      provider mirror is present);
#   2. checkov over infra/ (pinned, from PyPI, in its own virtualenv);
#   3. apply of the example against moto server, a second plan with no changes, the policy check
#      (tests/infra/check_policies.py), the suites' policy snapshot (tests/infra/snapshot_policies.py)
#      and, after the suites, every granted action used (tests/infra/check_policy_use.py), destroy,
#      and a read-back that nothing is left in moto;
#   4. the same with a customer managed key (tests/infra/customer_key.py): its key policy from a
#      plan, apply, every resource on the key, no change, destroy.
# Needs the packages from `make package` (the functions are created from the real zips).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/orkv-target}"
package_dir="${1:-$CARGO_TARGET_DIR/lambda}"
run=$(mktemp -d "${TMPDIR:-/tmp}/orkv-infra.XXXXXX")
moto_pid=
cleanup() {
  [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -n "${ORKV_KEEP_RUN:-}" ]; then echo "kept $run"; else rm -rf "$run"; fi
}
trap cleanup EXIT
# A CLI config that does not exist (none on a fresh machine): an empty one keeps terraform quiet.
if [ ! -f "${TF_CLI_CONFIG_FILE:-$HOME/.terraformrc}" ]; then
  : >"$run/terraformrc"
  export TF_CLI_CONFIG_FILE="$run/terraformrc"
fi
step() { printf '==> %s\n' "$*"; }
fail() { printf 'infra test FAILED: %s\n' "$*" >&2; exit 1; }

for f in provision rotate sweep; do
  [ -f "$package_dir/$f/bootstrap.zip" ] || fail "$package_dir/$f/bootstrap.zip is missing: run make package"
done

# The hashicorp/aws provider: the local filesystem mirror when this machine has one, else the
# registry (what `terraform init` would download anyway).
plugin_args=()
mirror_bin=$(find /opt /usr/share /usr/local/share "$HOME/.terraform.d" -path '*registry.terraform.io/hashicorp/aws/*' -name 'terraform-provider-aws*' 2>/dev/null | head -1 || true)
if [ -n "$mirror_bin" ]; then
  plugin_args=("-plugin-dir=${mirror_bin%%/registry.terraform.io/*}")
fi

# Work on a copy so no state or .terraform lands in the checkout.
cp -r infra "$run/infra"
module="$run/infra"
example="$run/infra/examples/teams"

step "terraform fmt -check"
terraform fmt -check -recursive -diff infra || fail "terraform fmt: run terraform fmt -recursive infra"

step "terraform validate (module and example)"
for dir in "$module" "$example"; do
  terraform -chdir="$dir" init -backend=false "${plugin_args[@]}" >"$run/init.log" 2>&1 || { cat "$run/init.log"; fail "init $dir"; }
  terraform -chdir="$dir" validate -no-color || fail "validate $dir"
done

step "checkov over infra/"
tools/setup-checkov.sh
.venv-checkov/bin/checkov --directory infra --framework terraform --quiet --compact --skip-download \
  --download-external-modules false >"$run/checkov.log" 2>&1 || { cat "$run/checkov.log"; fail "checkov reported failed checks"; }
grep -E 'Passed checks|Failed checks|Skipped checks' "$run/checkov.log" | sed 's/^/    /' || true

step "moto server"
port=$(python3 tools/free-port.py)
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$run/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && break; sleep 0.1; done
sed "s#@MOTO@#http://127.0.0.1:$port#g" tests/infra/moto_override.tf.tpl >"$example/moto_override.tf"
terraform -chdir="$example" init "${plugin_args[@]}" >"$run/init.log" 2>&1 || { cat "$run/init.log"; fail "init example"; }

step "terraform apply of the example against moto"
terraform -chdir="$example" apply -auto-approve -no-color -var "package_dir=$package_dir" >"$run/apply.log" 2>&1 \
  || { tail -60 "$run/apply.log"; fail "apply"; }
grep -E '^Apply complete' "$run/apply.log" | sed 's/^/    /'
terraform -chdir="$example" state list >"$run/state.txt"
python3 tests/infra/check_state.py "$run/state.txt" || fail "resources missing after apply"

step "the functions accept the environment the module rendered"
.venv/bin/python tests/infra/check_function_env.py "http://127.0.0.1:$port" "$CARGO_TARGET_DIR/debug" || fail "function environment"

step "the failure rules page for this deployment's secrets only (EventBridge's own matcher)"
.venv/bin/python tests/infra/check_rules.py "http://127.0.0.1:$port" "openrouter/" || fail "failure rules"

step "second plan shows no changes"
set +e
terraform -chdir="$example" plan -detailed-exitcode -no-color -var "package_dir=$package_dir" >"$run/plan.log" 2>&1
code=$?
set -e
[ "$code" = 0 ] || { cat "$run/plan.log"; fail "second plan exit code $code (2 = changes pending)"; }
echo "    No changes."

step "a customer key's policy: the statements the module renders for it"
terraform -chdir="$example" output -json >"$run/outputs-kms.json"
python3 tests/infra/check_kms.py "$run/outputs-kms.json" || fail "customer key"

step "policy documents: each role allows only its own actions"
terraform -chdir="$example" output -json policy_documents >"$run/policies.json"
python3 tests/infra/check_policies.py "$run/policies.json" || fail "policy check"

step "the suites' policy snapshot is what the module renders (tests/src/iam.rs evaluates every call against it)"
update=()
[ -n "${ORKV_UPDATE_POLICIES:-}" ] && update=(--update)
python3 tests/infra/snapshot_policies.py "$run/policies.json" us-east-1 123456789012 tests/infra/rendered-policies.json "${update[@]}" \
  || fail "tests/infra/rendered-policies.json is stale"
iam_log="${ORKV_IAM_LOG_DIR:-$CARGO_TARGET_DIR/orkv-iam}"
if compgen -G "$iam_log/calls-*.jsonl" >/dev/null; then
  step "every Secrets Manager action a role grants was made under it by the suites (tests/src/iam.rs)"
  python3 tests/infra/check_policy_use.py "$iam_log" tests/infra/rendered-policies.json || fail "a role grants an action no test makes"
else
  step "no suite decisions in $iam_log (make test runs the suites first): skipping the granted-action check"
fi

step "tenants: each tenant's principals invoke only its alias; no rule targets the unqualified function"
terraform -chdir="$example" output -json >"$run/outputs.json"
python3 tests/infra/check_tenants.py "$run/outputs.json" || fail "tenant check"

step "terraform destroy"
terraform -chdir="$example" destroy -auto-approve -no-color -var "package_dir=$package_dir" >"$run/destroy.log" 2>&1 \
  || { tail -40 "$run/destroy.log"; fail "destroy"; }
grep -E '^Destroy complete' "$run/destroy.log" | sed 's/^/    /'
left=$(terraform -chdir="$example" state list | wc -l)
[ "$left" = 0 ] || fail "$left resources still in state after destroy"
.venv/bin/python tests/infra/check_moto_empty.py "http://127.0.0.1:$port" || fail "resources left in moto after destroy"

step "with a customer key (kms_key_arn): its key policy from a plan, apply, every resource on it, no change, destroy"
url="http://127.0.0.1:$port"
kms_arn=$(.venv/bin/python tests/infra/customer_key.py create "$url") || fail "create the customer key"
kms_vars=(-var "package_dir=$package_dir" -var "kms_key_arn=$kms_arn")
terraform -chdir="$example" plan -no-color -out="$run/kms.plan" "${kms_vars[@]}" >"$run/kms-plan.log" 2>&1 \
  || { tail -40 "$run/kms-plan.log"; fail "plan with a customer key"; }
terraform -chdir="$example" show -json "$run/kms.plan" >"$run/kms-plan.json"
python3 -c 'import json,sys; json.dump(json.load(open(sys.argv[1]))["planned_values"]["outputs"], open(sys.argv[2], "w"))' \
  "$run/kms-plan.json" "$run/kms-outputs.json"
python3 tests/infra/check_kms.py "$run/kms-outputs.json" || fail "customer key statements"
.venv/bin/python tests/infra/customer_key.py attach "$url" "$kms_arn" "$run/kms-plan.json" || fail "key policy"
terraform -chdir="$example" apply -auto-approve -no-color "$run/kms.plan" >"$run/kms-apply.log" 2>&1 \
  || { tail -60 "$run/kms-apply.log"; fail "apply with a customer key"; }
grep -E '^Apply complete' "$run/kms-apply.log" | sed 's/^/    /'
terraform -chdir="$example" output -json policy_documents >"$run/kms-policies.json"
.venv/bin/python tests/infra/customer_key.py check "$url" "$kms_arn" "$run/kms-policies.json" || fail "customer key in use"
.venv/bin/python tests/infra/check_function_env.py "$url" "$CARGO_TARGET_DIR/debug" || fail "function environment with a customer key"
set +e
terraform -chdir="$example" plan -detailed-exitcode -no-color "${kms_vars[@]}" >"$run/kms-plan2.log" 2>&1
code=$?
set -e
[ "$code" = 0 ] || { cat "$run/kms-plan2.log"; fail "second plan with a customer key: exit code $code"; }
echo "    No changes."
terraform -chdir="$example" destroy -auto-approve -no-color "${kms_vars[@]}" >"$run/kms-destroy.log" 2>&1 \
  || { tail -40 "$run/kms-destroy.log"; fail "destroy with a customer key"; }
left=$(terraform -chdir="$example" state list | wc -l)
[ "$left" = 0 ] || fail "$left resources still in state after destroy"
.venv/bin/python tests/infra/check_moto_empty.py "$url" || fail "resources left in moto after destroy"
echo "infra test passed"
