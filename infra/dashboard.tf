# ---------------------------------------------------------------------------------------------
# The operators' dashboard: the product's own metrics (namespace OpenRouterKeyVending: the sweep's
# per-run counters, the rotate function's completions and step failures) beside Lambda's and SQS's.
# What each widget tells an operator: README, "The dashboard".
# ---------------------------------------------------------------------------------------------

locals {
  ns = "OpenRouterKeyVending"
  # One metric line: [namespace, name, dim, value, {label}] in CloudWatch's dashboard syntax.
  sweep_metric  = { for m in ["RotationsStarted", "RotationFailures", "KeysNearExpiry", "LowSpendKeys", "OrphansFound", "CurrentKeysBroken", "CurrentKeysRepaired", "KeysDrifted", "KeysDriftRepaired", "SecretValuesReplaced", "UnmanagedKeys", "RetirementsBlocked", "KeysRetired", "SweepIncomplete", "IdleKeys", "KeysWithoutExpiry", "WorkspacesLoggingKeysById"] : m => [local.ns, m, "Function", "sweep", { label = m }] }
  rotate_metric = { for m in ["RotationsCompleted", "RotationStepFailures"] : m => [local.ns, m, "Function", "rotate", { label = m }] }

  dashboard_widgets = [
    {
      type       = "text", x = 0, y = 0, width = 24, height = 2
      properties = { markdown = "## ${var.name}: OpenRouter key vending\nRotations, keys near expiry or low on spend, drift and orphans come from the sweep (one point per run) and the rotate function. Every alarm of this deployment goes to the alarm topic; failed requests and Secrets Manager's RotationFailed are routed there too. Result events: bus `${local.result_bus_name}`, source `${var.result_events.source}`." }
    },
    {
      type = "metric", x = 0, y = 2, width = 12, height = 6
      properties = {
        title   = "Rotations: started, completed, failed", region = local.region, stat = "Sum", period = 3600, view = "timeSeries"
        metrics = [local.sweep_metric["RotationsStarted"], local.rotate_metric["RotationsCompleted"], local.sweep_metric["RotationFailures"], local.rotate_metric["RotationStepFailures"]]
      }
    },
    {
      type = "metric", x = 12, y = 2, width = 12, height = 6
      properties = {
        title   = "Keys near expiry, low on spend headroom, idle, never expiring; workspaces logging keys by id", region = local.region, stat = "Maximum", period = 3600, view = "timeSeries"
        metrics = [local.sweep_metric["KeysNearExpiry"], local.sweep_metric["LowSpendKeys"], local.sweep_metric["IdleKeys"], local.sweep_metric["KeysWithoutExpiry"], local.sweep_metric["WorkspacesLoggingKeysById"]]
      }
    },
    {
      type = "metric", x = 0, y = 8, width = 12, height = 6
      properties = {
        title   = "Drift, orphans, unmanaged keys, blocked retirements", region = local.region, stat = "Maximum", period = 3600, view = "timeSeries"
        metrics = [local.sweep_metric["CurrentKeysBroken"], local.sweep_metric["CurrentKeysRepaired"], local.sweep_metric["KeysDrifted"], local.sweep_metric["KeysDriftRepaired"], local.sweep_metric["SecretValuesReplaced"], local.sweep_metric["OrphansFound"], local.sweep_metric["UnmanagedKeys"], local.sweep_metric["RetirementsBlocked"], local.sweep_metric["SweepIncomplete"]]
      }
    },
    {
      type = "metric", x = 12, y = 8, width = 12, height = 6
      properties = {
        title = "Queues: undelivered events and failed invocations", region = local.region, stat = "Maximum", period = 300, view = "timeSeries"
        metrics = [
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.dlq.name, { label = "undelivered" }],
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.failed.name, { label = "failed" }],
        ]
      }
    },
    {
      type = "metric", x = 0, y = 14, width = 12, height = 6
      properties = {
        title   = "Function errors", region = local.region, stat = "Sum", period = 300, view = "timeSeries"
        metrics = [for f in sort(tolist(local.functions)) : ["AWS/Lambda", "Errors", "FunctionName", "${var.name}-${f}", { label = f }]]
      }
    },
    {
      type = "metric", x = 12, y = 14, width = 12, height = 6
      properties = {
        title   = "Function duration (p99, ms)", region = local.region, stat = "p99", period = 300, view = "timeSeries"
        metrics = [for f in sort(tolist(local.functions)) : ["AWS/Lambda", "Duration", "FunctionName", "${var.name}-${f}", { label = f }]]
      }
    },
    {
      type = "metric", x = 0, y = 20, width = 24, height = 6
      properties = {
        title = "Spend and headroom per tenant and workspace (USD)", region = local.region, period = 3600, view = "timeSeries"
        metrics = [
          [{ expression = "SEARCH('{${local.ns},Tenant,Workspace} MetricName=\"SpendUsd\"', 'Maximum', 3600)", id = "spend", label = "spent" }],
          [{ expression = "SEARCH('{${local.ns},Tenant,Workspace} MetricName=\"HeadroomUsd\"', 'Minimum', 3600)", id = "headroom", label = "headroom" }],
        ]
      }
    },
  ]
}

resource "aws_cloudwatch_dashboard" "main" {
  count = var.create_dashboard ? 1 : 0

  dashboard_name = var.name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
