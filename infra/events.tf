# ---------------------------------------------------------------------------------------------
# Queues: dead letters of EventBridge and Scheduler deliveries, and failed asynchronous invocations.
# ---------------------------------------------------------------------------------------------

resource "aws_sqs_queue" "dlq" {
  name                      = "${var.name}-undelivered"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  kms_master_key_id         = var.kms_key_arn
  tags                      = local.tags
}

resource "aws_sqs_queue" "failed" {
  name                      = "${var.name}-failed"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = var.kms_key_arn == null ? true : null
  kms_master_key_id         = var.kms_key_arn
  tags                      = local.tags
}

data "aws_iam_policy_document" "dlq" {
  statement {
    sid       = "EventBridgeDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = concat(aws_cloudwatch_event_rule.requests[*].arn, [for r in aws_cloudwatch_event_rule.tenant : r.arn])
    }
  }
}

resource "aws_sqs_queue_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id
  policy    = data.aws_iam_policy_document.dlq.json
}

# ---------------------------------------------------------------------------------------------
# EventBridge: key requests, rotation requests and revocations from the allowed sources.
# ---------------------------------------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "requests" {
  count = local.tenanted ? 0 : 1

  name           = "${var.name}-key-requests"
  description    = "OpenRouter key requests, rotation requests and revocations for ${var.name}"
  event_bus_name = var.event_bus_name
  event_pattern = jsonencode({
    source = var.event_sources
    detail-type = [
      "OpenRouter Key Requested",
      "OpenRouter Key Rotation Requested",
      "OpenRouter Key Revocation Requested",
      "OpenRouter Key Adoption Requested",
    ]
  })
  tags = local.tags
}

moved {
  from = aws_cloudwatch_event_rule.requests
  to   = aws_cloudwatch_event_rule.requests[0]
}

resource "aws_cloudwatch_event_target" "provision" {
  count = local.tenanted ? 0 : 1

  rule           = aws_cloudwatch_event_rule.requests[0].name
  event_bus_name = var.event_bus_name
  target_id      = "provision"
  arn            = aws_lambda_function.function["provision"].arn

  retry_policy {
    maximum_event_age_in_seconds = var.retry.maximum_event_age_seconds
    maximum_retry_attempts       = var.retry.maximum_retry_attempts
  }

  dead_letter_config {
    arn = aws_sqs_queue.dlq.arn
  }
}

moved {
  from = aws_cloudwatch_event_target.provision
  to   = aws_cloudwatch_event_target.provision[0]
}

# ---------------------------------------------------------------------------------------------
# EventBridge Scheduler: the sweep.
# ---------------------------------------------------------------------------------------------

resource "aws_scheduler_schedule" "sweep" {
  name                         = "${var.name}-sweep"
  description                  = "Rotates keys nearing expiry and retires superseded keys"
  schedule_expression          = var.sweep_schedule.expression
  schedule_expression_timezone = var.sweep_schedule.timezone
  kms_key_arn                  = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.function["sweep"].arn
    role_arn = aws_iam_role.scheduler.arn
    # The execution id makes every delivery of one tick the same run (idempotent retries).
    input = jsonencode({
      execution_id   = "<aws.scheduler.execution-id>"
      scheduled_time = "<aws.scheduler.scheduled-time>"
    })

    retry_policy {
      maximum_event_age_in_seconds = var.retry.maximum_event_age_seconds
      maximum_retry_attempts       = var.retry.maximum_retry_attempts
    }

    dead_letter_config {
      arn = aws_sqs_queue.dlq.arn
    }
  }
}
