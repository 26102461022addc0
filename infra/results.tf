# ---------------------------------------------------------------------------------------------
# Result events: where the functions announce outcomes, and the rules that page on failures.
# ---------------------------------------------------------------------------------------------

locals {
  result_bus_name = coalesce(var.result_events.bus_name, var.event_bus_name)
  result_bus_arn  = "arn:${local.partition}:events:${local.region}:${local.account}:event-bus/${local.result_bus_name}"
  # The functions that announce: provision (every request's outcome) and rotate (finishSecret).
  # Known at plan time (the topic's ARN is not, when the module creates it).
  has_alarm_topic = var.alarm_topic_arn != null || var.create_alarm_topic
  announcers      = var.result_events.enabled ? toset(["provision", "rotate"]) : toset([])
  result_environment = var.result_events.enabled ? {
    ORKV_EVENT_BUS    = local.result_bus_arn
    ORKV_EVENT_SOURCE = var.result_events.source
  } : {}
}

# Failures page the alarm topic: the product's own failure events, and Secrets Manager's
# RotationFailed (recorded by CloudTrail; EventBridge receives CloudTrail management events on
# the default bus).
resource "aws_cloudwatch_event_rule" "request_failed" {
  count = var.result_events.enabled && local.has_alarm_topic ? 1 : 0

  name           = "${var.name}-request-failed"
  description    = "Failed or refused OpenRouter key requests and rotation steps of ${var.name}"
  event_bus_name = local.result_bus_name
  event_pattern = jsonencode({
    source      = [var.result_events.source]
    detail-type = ["OpenRouter Key Request Failed"]
  })
  tags = local.tags
}

resource "aws_cloudwatch_event_target" "request_failed" {
  count = length(aws_cloudwatch_event_rule.request_failed)

  rule           = aws_cloudwatch_event_rule.request_failed[0].name
  event_bus_name = local.result_bus_name
  target_id      = "alarms"
  arn            = local.alarm_topic
}

resource "aws_cloudwatch_event_rule" "rotation_failed" {
  count = local.has_alarm_topic ? 1 : 0

  name        = "${var.name}-rotation-failed"
  description = "Secrets Manager reported a failed rotation of a secret under ${var.secret_name_prefix} (RotationFailed, via CloudTrail)"
  # Only this deployment's secrets: CloudTrail's RotationFailed names the secret's ARN in
  # additionalEventData.SecretId (Secrets Manager user guide, "Match Secrets Manager events with
  # EventBridge"); every other secret of the account pages someone else.
  event_pattern = jsonencode({
    source      = ["aws.secretsmanager"]
    detail-type = ["AWS Service Event via CloudTrail"]
    detail = {
      eventSource = ["secretsmanager.amazonaws.com"]
      eventName   = ["RotationFailed"]
      additionalEventData = {
        SecretId = [{ prefix = "arn:${local.partition}:secretsmanager:${local.region}:${local.account}:secret:${var.secret_name_prefix}" }]
      }
    }
  })
  tags = local.tags
}

resource "aws_cloudwatch_event_target" "rotation_failed" {
  count = length(aws_cloudwatch_event_rule.rotation_failed)

  rule      = aws_cloudwatch_event_rule.rotation_failed[0].name
  target_id = "alarms"
  arn       = local.alarm_topic
}

# The created topic's policy: the account administers it, CloudWatch alarms and the two failure
# rules publish to it. A topic passed in (alarm_topic_arn) needs the same publish statements in its
# own policy, and a key CloudWatch and EventBridge may use (see the README).
data "aws_iam_policy_document" "alarm_topic" {
  count = length(aws_sns_topic.alarms)

  statement {
    sid = "AccountAdministers"
    actions = [
      "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:AddPermission", "sns:RemovePermission",
      "sns:DeleteTopic", "sns:Subscribe", "sns:ListSubscriptionsByTopic", "sns:Publish",
    ]
    resources = [aws_sns_topic.alarms[0].arn]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }
  statement {
    sid       = "CloudWatchAlarms"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms[0].arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
  dynamic "statement" {
    for_each = length(concat(aws_cloudwatch_event_rule.request_failed, aws_cloudwatch_event_rule.rotation_failed)) > 0 ? [1] : []
    content {
      sid       = "FailureRules"
      actions   = ["sns:Publish"]
      resources = [aws_sns_topic.alarms[0].arn]
      principals {
        type        = "Service"
        identifiers = ["events.amazonaws.com"]
      }
      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = concat(aws_cloudwatch_event_rule.request_failed[*].arn, aws_cloudwatch_event_rule.rotation_failed[*].arn)
      }
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  count = length(aws_sns_topic.alarms)

  arn    = aws_sns_topic.alarms[0].arn
  policy = data.aws_iam_policy_document.alarm_topic[0].json
}
