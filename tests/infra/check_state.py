"""Asserts that `terraform state list` after applying the example holds every resource the module
is meant to create. Usage: check_state.py STATE_LIST_FILE"""
import sys

M = "module.key_vending."
EXPECTED = [
    *[f'{M}aws_lambda_function.function["{f}"]' for f in ("provision", "rotate", "sweep")],
    *[f'{M}aws_iam_role.function["{f}"]' for f in ("provision", "rotate", "sweep")],
    *[f'{M}aws_iam_role_policy.function["{f}"]' for f in ("provision", "rotate", "sweep")],
    *[f'{M}aws_cloudwatch_log_group.function["{f}"]' for f in ("provision", "rotate", "sweep")],
    *[f'{M}aws_lambda_function_event_invoke_config.function["{f}"]' for f in ("provision", "rotate", "sweep")],
    *[f'{M}aws_cloudwatch_metric_alarm.function_errors["{f}"]' for f in ("provision", "rotate", "sweep")],
    f"{M}aws_iam_role.scheduler",
    f"{M}aws_iam_role_policy.scheduler",
    f"{M}aws_lambda_permission.rotate_from_secretsmanager",
    # The example's teams are tenants: an alias, a rule, a target and an invoke permission
    # per team with an event source; a pipeline permission per team with a deploy role.
    *[f'{M}aws_lambda_alias.tenant["{t}"]' for t in ("search", "support-bot", "data-science")],
    *[f'{M}aws_lambda_function_event_invoke_config.tenant["{t}"]' for t in ("search", "support-bot", "data-science")],
    *[f'{M}aws_cloudwatch_event_rule.tenant["{t}"]' for t in ("search", "support-bot")],
    *[f'{M}aws_cloudwatch_event_target.tenant["{t}"]' for t in ("search", "support-bot")],
    *[f'{M}aws_lambda_permission.tenant_from_eventbridge["{t}"]' for t in ("search", "support-bot")],
    f'{M}aws_lambda_permission.tenant_from_pipeline["search/arn:aws:iam::123456789012:role/search-deploy"]',
    f'{M}aws_lambda_permission.tenant_from_pipeline["data-science/arn:aws:iam::123456789012:role/research-deploy"]',
    f"{M}aws_lambda_alias.admin[0]",
    f'{M}aws_lambda_permission.admin_from_pipeline["arn:aws:iam::123456789012:role/platform-operators"]',
    f"{M}aws_secretsmanager_secret.management_key[0]",
    f"{M}aws_secretsmanager_secret_policy.management_key[0]",
    f"{M}aws_sqs_queue.dlq",
    f"{M}aws_sqs_queue.failed",
    f"{M}aws_sqs_queue_policy.dlq",
    f"{M}aws_scheduler_schedule.sweep",
    f"{M}aws_sns_topic.alarms[0]",
    f"{M}aws_sns_topic_policy.alarms[0]",
    f"{M}aws_kms_key.alarms[0]",
    f"{M}aws_cloudwatch_dashboard.main[0]",
    f"{M}aws_cloudwatch_event_rule.request_failed[0]",
    f"{M}aws_cloudwatch_event_target.request_failed[0]",
    f"{M}aws_cloudwatch_event_rule.rotation_failed[0]",
    f"{M}aws_cloudwatch_event_target.rotation_failed[0]",
    f'{M}aws_cloudwatch_metric_alarm.queue_depth["undelivered"]',
    f'{M}aws_cloudwatch_metric_alarm.queue_depth["failed"]',
    *[
        f'{M}aws_cloudwatch_metric_alarm.sweep_warning["{m}"]'
        for m in (
            "RotationFailures",
            "KeysNearExpiry",
            "LowSpendKeys",
            "RetirementsBlocked",
            "OrphansFound",
            "CurrentKeysBroken",
            "KeysDrifted",
            "SecretValuesReplaced",
            "SweepIncomplete",
        )
    ],
]


def main() -> int:
    state = {line.strip() for line in open(sys.argv[1]) if line.strip()}
    managed = {s for s in state if not s.split(".")[-2].startswith("data") and ".data." not in s}
    missing = [e for e in EXPECTED if e not in state]
    for e in missing:
        print(f"missing after apply: {e}")
    print(f"    {len(managed)} managed resources in state, {len(EXPECTED)} expected present, {len(missing)} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
