# One role per function, each allowed only the calls its code makes (see tests/infra/check_policies.py,
# which asserts exactly these action sets against the rendered documents).

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.functions

  name               = "${var.name}-${each.key}"
  description        = "OpenRouter Key Vending ${each.key} function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.tags
}

locals {
  # Secrets Manager actions on managed secrets, per function.
  secret_actions = {
    # Vend (create, write, promote), update caps, start rotations, revoke.
    provision = [
      # Revoke turns the revoked secret's rotation off.
      "secretsmanager:CancelRotateSecret",
      "secretsmanager:DeleteSecret",
      "secretsmanager:DescribeSecret",
      "secretsmanager:GetSecretValue",
      # Rotate now: an attempt Secrets Manager abandoned is a deprecated version.
      "secretsmanager:ListSecretVersionIds",
      "secretsmanager:PutSecretValue",
      "secretsmanager:RotateSecret",
      "secretsmanager:TagResource",
      "secretsmanager:UntagResource",
      "secretsmanager:UpdateSecretVersionStage",
    ]
    # The four rotation steps.
    rotate = [
      "secretsmanager:DescribeSecret",
      "secretsmanager:GetSecretValue",
      "secretsmanager:PutSecretValue",
      "secretsmanager:TagResource",
      "secretsmanager:UntagResource",
      "secretsmanager:UpdateSecretVersionStage",
    ]
    # Read tags and values, start rotations, clear retirement tags, and carry a retired key's
    # spend into the secret's orkv:budget tag (ADR 0010) before the key is deleted.
    sweep = [
      "secretsmanager:DescribeSecret",
      "secretsmanager:GetSecretValue",
      "secretsmanager:ListSecretVersionIds",
      "secretsmanager:RotateSecret",
      "secretsmanager:TagResource",
      "secretsmanager:UntagResource",
    ]
  }
  # Functions that start rotations (RotateSecret makes Secrets Manager invoke the rotate function
  # on the caller's behalf, which needs lambda:InvokeFunction on it). The sweep also invokes it
  # directly, to run the steps of a rotation that stalled (ORKV_ROTATION_STALL_SECONDS).
  starts_rotations = toset(["provision", "sweep"])
}

data "aws_iam_policy_document" "function" {
  for_each = local.functions

  statement {
    sid       = "ManagedSecrets"
    actions   = local.secret_actions[each.key]
    resources = [local.managed_secret_arns]
    condition {
      test     = "StringEquals"
      variable = "secretsmanager:ResourceTag/${local.managed_by_tag}"
      values   = [local.managed_by_value]
    }
  }

  dynamic "statement" {
    for_each = each.key == "provision" ? [1] : []
    content {
      sid       = "CreateManagedSecrets"
      actions   = ["secretsmanager:CreateSecret", "secretsmanager:TagResource"]
      resources = [local.managed_secret_arns]
      condition {
        test     = "StringEquals"
        variable = "aws:RequestTag/${local.managed_by_tag}"
        values   = [local.managed_by_value]
      }
    }
  }

  dynamic "statement" {
    for_each = each.key == "provision" ? [1] : []
    content {
      sid = "ReadSecretsToAdopt"
      # Adoption (README, "Adopt a key you already have"): a secret under the prefix that is not
      # managed yet may be described and read, so its key can be checked before anything is
      # written; it becomes the product's by TagResource with the managed-by tag (above).
      actions   = ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
      resources = [local.managed_secret_arns]
      condition {
        test     = "Null"
        variable = "secretsmanager:ResourceTag/${local.managed_by_tag}"
        values   = ["true"]
      }
    }
  }

  dynamic "statement" {
    for_each = contains(["sweep", "provision", "rotate"], each.key) ? [1] : []
    content {
      sid = "ListManagedSecrets"
      # ListSecrets has no resource-level permissions (it returns names and tags, never values);
      # the sweep and the provision function's inventory filter by the managed-by tag, and
      # every function asks whether another managed secret holds a key before it acts on a key
      # a record says was adopted (ops/owned.rs held_elsewhere).
      actions   = ["secretsmanager:ListSecrets"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = contains(local.secret_actions[each.key], "secretsmanager:UntagResource") ? [1] : []
    content {
      sid       = "NeverDropTheManagedByOrTenantTag"
      effect    = "Deny"
      actions   = ["secretsmanager:UntagResource"]
      resources = ["*"]
      condition {
        test     = "ForAnyValue:StringEquals"
        variable = "aws:TagKeys"
        values   = [local.managed_by_tag, "orkv:tenant"]
      }
    }
  }

  dynamic "statement" {
    for_each = contains(local.secret_actions[each.key], "secretsmanager:TagResource") ? [1] : []
    content {
      sid       = "NeverRelabelTheManagedByTag"
      effect    = "Deny"
      actions   = ["secretsmanager:TagResource", "secretsmanager:CreateSecret"]
      resources = ["*"]
      condition {
        test     = "ForAnyValue:StringEquals"
        variable = "aws:TagKeys"
        values   = [local.managed_by_tag]
      }
      condition {
        test     = "StringNotEquals"
        variable = "aws:RequestTag/${local.managed_by_tag}"
        values   = [local.managed_by_value]
      }
    }
  }

  statement {
    sid       = "ReadTheManagementKey"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.management_key_secret_arn]
  }

  dynamic "statement" {
    for_each = contains(local.starts_rotations, each.key) ? [1] : []
    content {
      sid     = "LetSecretsManagerInvokeTheRotationFunction"
      actions = ["lambda:InvokeFunction"]
      # Built from the name: the roles exist before the functions.
      resources = ["${local.function_arn_prefix}rotate"]
    }
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [1]
    content {
      sid       = "CustomerKeyThroughSecretsManagerOnly"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = contains(local.announcers, each.key) ? [1] : []
    content {
      sid       = "PutResultEvents"
      actions   = ["events:PutEvents"]
      resources = [local.result_bus_arn]
      condition {
        test     = "StringEquals"
        variable = "events:source"
        values   = [var.result_events.source]
      }
    }
  }

  statement {
    sid       = "OnFailureDestination"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.failed.arn]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [1]
    content {
      sid       = "OnFailureDestinationEncryption"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["sqs.${local.region}.amazonaws.com"]
      }
    }
  }

  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }

  dynamic "statement" {
    for_each = var.enable_xray ? [1] : []
    content {
      sid       = "XRay"
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = "${var.name}-${each.key}"
  role   = aws_iam_role.function[each.key].id
  policy = data.aws_iam_policy_document.function[each.key].json
}

# The EventBridge Scheduler role: invoke the sweep, and dead-letter what it could not deliver.
data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-sweep-scheduler"
  description        = "EventBridge Scheduler: invokes the ${var.name} sweep"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "InvokeTheSweep"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.function["sweep"].arn]
  }
  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [1]
    content {
      sid       = "DeadLetterEncryption"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["sqs.${local.region}.amazonaws.com"]
      }
    }
  }
  dynamic "statement" {
    # A schedule encrypted with a customer key: Scheduler decrypts its payload with the execution
    # role's permissions before each invocation (EventBridge Scheduler user guide, "Encryption at
    # rest": the execution role needs kms:Decrypt on the key). Without it the sweep never runs.
    for_each = var.kms_key_arn == null ? [] : [1]
    content {
      sid       = "DecryptTheSchedule"
      actions   = ["kms:Decrypt"]
      resources = [var.kms_key_arn]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "${var.name}-sweep-scheduler"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}

# What a deploy pipeline's role needs to call the provision function (attach it to that role).
data "aws_iam_policy_document" "pipeline_invoke" {
  statement {
    sid       = "InvokeProvision"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.function["provision"].arn]
  }
}

# The statements a customer key (kms_key_arn) needs in its own key policy, beside the account's
# default statement that lets IAM policies grant the roles' uses (the roles' statements above go
# through Secrets Manager and SQS only). Rendered as the output customer_key_policy_statements;
# the module cannot attach them to a key it does not own.
data "aws_iam_policy_document" "customer_key" {
  #checkov:skip=CKV_AWS_111:Key policy statements: Resource "*" is the key they are attached to.
  #checkov:skip=CKV_AWS_356:Key policy statements: Resource "*" is the key they are attached to.
  # CloudWatch Logs encrypts the functions' log groups (CloudWatch Logs user guide, "Encrypt log
  # data in CloudWatch Logs using AWS KMS"): the logs service principal, for these log groups only.
  statement {
    sid       = "LogsEncryptTheFunctionLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/aws/lambda/${var.name}-*"]
    }
  }
  # CloudWatch alarms and the failure rules publish to the encrypted alarm topic (SNS developer
  # guide, "Enable compatibility between event sources from AWS services and encrypted topics"),
  # and EventBridge sends undelivered events to the encrypted dead-letter queue (EventBridge user
  # guide, "Using dead-letter queues": an encrypted queue's key must let events.amazonaws.com
  # Decrypt and GenerateDataKey).
  statement {
    sid       = "AlarmsRulesAndDeadLetters"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    }
  }
}
