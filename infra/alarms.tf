resource "aws_sns_topic" "alarms" {
  count = var.alarm_topic_arn == null && var.create_alarm_topic ? 1 : 0

  name = "${var.name}-alarms"
  # Not the AWS-managed alias/aws/sns: neither CloudWatch alarms nor EventBridge rules can publish
  # to a topic under it (its key policy cannot grant them), so alarms would go nowhere.
  kms_master_key_id = coalesce(var.kms_key_arn, try(aws_kms_key.alarms[0].arn, null))
  tags              = local.tags
}

# The alarm topic's key when no customer key is given: CloudWatch and EventBridge may use it
# to publish, for this account only.
resource "aws_kms_key" "alarms" {
  count = var.alarm_topic_arn == null && var.create_alarm_topic && var.kms_key_arn == null ? 1 : 0

  description             = "Encrypts the ${var.name} alarm topic; CloudWatch alarms and EventBridge rules publish with it."
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.alarm_key.json
  tags                    = local.tags
}

data "aws_iam_policy_document" "alarm_key" {
  # A key policy, not an identity policy: "*" as its resource means this key only (AWS KMS
  # Developer Guide, "Key policies": "the resource ... is the KMS key the key policy is attached
  # to"), and the account-root statement is the default key policy that keeps IAM in charge.
  #checkov:skip=CKV_AWS_111:Key policy: Resource "*" is this key; the writes are the account's default key-policy statement.
  #checkov:skip=CKV_AWS_356:Key policy: Resource "*" is this key (the only form a key policy takes).
  #checkov:skip=CKV_AWS_109:Key policy: the account root administers its own key (AWS's default key policy).
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }
  # The services' statement as AWS gives it (SNS developer guide, "Enable compatibility between
  # event sources from AWS services and encrypted topics"): no condition. A condition on
  # aws:SourceAccount, which AWS does not document for the KMS requests SNS makes on behalf of
  # CloudWatch and EventBridge, would refuse them and drop every page. Who may publish is the
  # topic policy's to say (aws:SourceAccount / aws:SourceArn on the Publish request).
  statement {
    sid       = "AlarmsAndRulesPublish"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    }
  }
}

locals {
  alarm_topic   = var.alarm_topic_arn != null ? var.alarm_topic_arn : (var.create_alarm_topic ? aws_sns_topic.alarms[0].arn : null)
  alarm_actions = local.alarm_topic == null ? [] : [local.alarm_topic]

  # Sweep metrics (Embedded Metric Format, namespace OpenRouterKeyVending, dimension Function=sweep)
  # that should never be above zero for long. Meaning of each: see the README's alarm table.
  sweep_warnings = {
    RotationFailures     = "A due rotation could not be started or failed; the key may expire."
    KeysNearExpiry       = "A key expires soon and has not been rotated (fixed expiry, or rotation failing)."
    LowSpendKeys         = "A key has less than the configured fraction of its spend cap left."
    RetirementsBlocked   = "A superseded key could not be retired; it still works past its grace."
    OrphansFound         = "A key named by this product has no secret referencing it."
    CurrentKeysBroken    = "A secret's current key was deleted, disabled or expired out of band; consumers hold a key that fails (with ORKV_DRIFT=repair the sweep rotated it)."
    SecretValuesReplaced = "A managed secret's current value was replaced by something that is not the product's record (by hand or another tool); it is never overwritten: find who wrote it, then restore the previous version or adopt the new key."
    KeysDrifted          = "A key's cap (limit, reset, BYOK) was changed behind the product's back; with ORKV_DRIFT=repair the sweep puts it back once the change is older than the pending lease."
    SweepIncomplete      = "The sweep ran out of time before finishing; the next run resumes."
  }
}

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each = local.functions

  alarm_name          = "${var.name}-${each.key}-errors"
  alarm_description   = "The ${each.key} function returned errors. Its log group says why; failed asynchronous invocations are kept in ${aws_sqs_queue.failed.name}."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.function[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "queue_depth" {
  for_each = {
    undelivered = aws_sqs_queue.dlq.name
    failed      = aws_sqs_queue.failed.name
  }

  alarm_name          = "${var.name}-${each.key}-messages"
  alarm_description   = each.key == "undelivered" ? "EventBridge or Scheduler could not deliver an event to a function after every retry; the message holds the event." : "An asynchronous invocation failed after every retry; the message holds the event and the error."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "sweep_warning" {
  for_each = local.sweep_warnings

  alarm_name          = "${var.name}-sweep-${each.key}"
  alarm_description   = each.value
  namespace           = "OpenRouterKeyVending"
  metric_name         = each.key
  dimensions          = { Function = "sweep" }
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}
