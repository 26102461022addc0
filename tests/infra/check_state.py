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
    f"{M}aws_lambda_permission.provision_from_eventbridge",
    f"{M}aws_secretsmanager_secret.management_key[0]",
    f"{M}aws_secretsmanager_secret_policy.management_key[0]",
    f"{M}aws_sqs_queue.dlq",
    f"{M}aws_sqs_queue.failed",
    f"{M}aws_sqs_queue_policy.dlq",
    f"{M}aws_cloudwatch_event_rule.requests",
    f"{M}aws_cloudwatch_event_target.provision",
    f"{M}aws_scheduler_schedule.sweep",
    f"{M}aws_sns_topic.alarms[0]",
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
