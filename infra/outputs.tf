output "function_arns" {
  description = "ARN of each function (provision, rotate, sweep)."
  value       = { for f in local.functions : f => aws_lambda_function.function[f].arn }
}

output "function_names" {
  description = "Name of each function; a pipeline invokes function_names.provision."
  value       = { for f in local.functions : f => aws_lambda_function.function[f].function_name }
}

output "role_arns" {
  description = "ARN of each function's role, and of the scheduler's."
  value       = merge({ for f in local.functions : f => aws_iam_role.function[f].arn }, { scheduler = aws_iam_role.scheduler.arn })
}

output "policy_documents" {
  description = "The rendered policy of each role (for review and for tests/infra/check_policies.py)."
  value       = merge({ for f in local.functions : f => data.aws_iam_policy_document.function[f].json }, { scheduler = data.aws_iam_policy_document.scheduler.json })
}

output "management_key_secret_arn" {
  description = "Secret the management key is read from; put the key there (see the README)."
  value       = local.management_key_secret_arn
}

output "secret_name_prefix" {
  description = "Every managed secret's name starts with this."
  value       = var.secret_name_prefix
}

output "managed_secret_arn_pattern" {
  description = "ARN pattern of the managed secrets, for application read policies (narrow it to one team's secret)."
  value       = local.managed_secret_arns
}

output "event_rule_arn" {
  description = "The EventBridge rule that routes key requests to the provision function."
  value       = aws_cloudwatch_event_rule.requests.arn
}

output "sweep_schedule_arn" {
  description = "The EventBridge Scheduler schedule of the sweep."
  value       = aws_scheduler_schedule.sweep.arn
}

output "dead_letter_queue_urls" {
  description = "undelivered: events EventBridge or Scheduler could not deliver; failed: asynchronous invocations that failed every retry."
  value       = { undelivered = aws_sqs_queue.dlq.url, failed = aws_sqs_queue.failed.url }
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify (null when none)."
  value       = local.alarm_topic
}

output "pipeline_invoke_policy_json" {
  description = "Attach to a deploy pipeline's role so it can invoke the provision function."
  value       = data.aws_iam_policy_document.pipeline_invoke.json
}
