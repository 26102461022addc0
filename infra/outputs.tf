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
  description = "Single-policy form: the EventBridge rule that routes key requests to the provision function (null with tenants: see tenants.*.event_rule_arn)."
  value       = try(aws_cloudwatch_event_rule.requests[0].arn, null)
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

output "tenants" {
  description = "Per tenant: the alias its pipelines invoke (and only it), the policy its pipeline roles need, the PutEvents policy for its producers (events:source bound to its sources), its rule, its secret prefix, and example payloads."
  value = { for name, t in var.tenants : name => {
    alias_arn              = aws_lambda_alias.tenant[name].arn
    invoke_policy_json     = data.aws_iam_policy_document.tenant_invoke[name].json
    put_events_policy_json = try(data.aws_iam_policy_document.tenant_put_events[name].json, null)
    event_rule_arn         = try(aws_cloudwatch_event_rule.tenant[name].arn, null)
    event_sources          = t.event_sources
    secret_prefix          = coalesce(t.secret_prefix, "${var.secret_name_prefix}${name}/")
    invoke_command         = "aws lambda invoke --function-name ${aws_lambda_function.function["provision"].function_name} --qualifier ${name} --cli-binary-format raw-in-base64-out --payload file://request.json reply.json"
    payload_examples = {
      provision = jsonencode({
        workspace   = keys(t.workspaces)[0]
        key_name    = "my-service"
        limit       = t.workspaces[keys(t.workspaces)[0]].max_limit_usd
        limit_reset = "monthly"
      })
      rotate = jsonencode({ action = "rotate", secret_name = "${coalesce(t.secret_prefix, "${var.secret_name_prefix}${name}/")}${keys(t.workspaces)[0]}/my-service", reason = "manual" })
      revoke = jsonencode({ action = "revoke", secret_name = "${coalesce(t.secret_prefix, "${var.secret_name_prefix}${name}/")}${keys(t.workspaces)[0]}/my-service" })
    }
  } }
}

output "admin_alias_arn" {
  description = "Tenant form: the platform-admin alias (acts for any tenant; null without tenants)."
  value       = try(aws_lambda_alias.admin[0].arn, null)
}

output "invoke_grants" {
  description = "Every principal the provision function's resource policy lets invoke it, with the qualifier (alias) it may invoke (\"\": the unqualified function), for review and tests/infra/check_tenants.py."
  value = concat(
    [for p in aws_lambda_permission.provision_from_pipeline : { principal = p.principal, qualifier = "", source_arn = "" }],
    [for p in aws_lambda_permission.provision_from_eventbridge : { principal = p.principal, qualifier = "", source_arn = p.source_arn }],
    [for p in aws_lambda_permission.tenant_from_pipeline : { principal = p.principal, qualifier = p.qualifier, source_arn = "" }],
    [for p in aws_lambda_permission.tenant_from_eventbridge : { principal = p.principal, qualifier = p.qualifier, source_arn = p.source_arn }],
    [for p in aws_lambda_permission.admin_from_pipeline : { principal = p.principal, qualifier = p.qualifier, source_arn = "" }],
  )
}

output "event_targets" {
  description = "What each key-request rule targets (rule name => target ARN)."
  value = merge(
    { for t in aws_cloudwatch_event_target.provision : t.rule => t.arn },
    { for t in aws_cloudwatch_event_target.tenant : t.rule => t.arn },
  )
}

output "result_event_bus_arn" {
  description = "The bus result events are put on (null when result_events.enabled is false); subscribe with a rule on source result_events.source."
  value       = var.result_events.enabled ? local.result_bus_arn : null
}

output "dashboard_name" {
  description = "The CloudWatch dashboard (null when create_dashboard is false)."
  value       = try(aws_cloudwatch_dashboard.main[0].dashboard_name, null)
}

output "customer_key_policy_statements" {
  description = "With kms_key_arn: the statements to add to that key's policy (CloudWatch Logs for the function log groups; CloudWatch alarms and EventBridge rules publishing to the encrypted alarm topic, EventBridge dead letters to the encrypted queue). The functions' and the scheduler's own uses are granted by their roles."
  value       = data.aws_iam_policy_document.customer_key.json
}
