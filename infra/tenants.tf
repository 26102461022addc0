# ---------------------------------------------------------------------------------------------
# Tenants: one alias of the provision function per tenant, the only way in for that tenant.
#
# The function reads the tenant from the qualifier of the invoked function ARN, which Lambda
# sets from the alias invoked: a tenant's pipeline roles may invoke only its alias, and its
# EventBridge rule (matching only its sources) targets only its alias. The platform-admin alias
# acts for any tenant. An unqualified invocation is refused by the function.
# ---------------------------------------------------------------------------------------------

locals {
  tenant_rules = { for name, t in var.tenants : name => t if length(t.event_sources) > 0 }
  tenant_pipelines = merge([for name, t in var.tenants : {
    for arn in t.pipeline_principal_arns : "${name}/${arn}" => { tenant = name, principal = arn }
  }]...)
}

resource "aws_lambda_alias" "tenant" {
  for_each = var.tenants

  name             = each.key
  description      = "Tenant ${each.key}: its pipelines and its EventBridge rule invoke this alias only"
  function_name    = aws_lambda_function.function["provision"].function_name
  function_version = "$LATEST"
}

resource "aws_lambda_alias" "admin" {
  count = local.tenanted ? 1 : 0

  name             = local.admin_alias
  description      = "Platform operators: acts for any tenant"
  function_name    = aws_lambda_function.function["provision"].function_name
  function_version = "$LATEST"
}

# Asynchronous invocations through an alias (EventBridge) retry and fail to the queue as the
# function's own do.
resource "aws_lambda_function_event_invoke_config" "tenant" {
  for_each = var.tenants

  function_name                = aws_lambda_function.function["provision"].function_name
  qualifier                    = aws_lambda_alias.tenant[each.key].name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = var.retry.maximum_event_age_seconds

  destination_config {
    on_failure {
      destination = aws_sqs_queue.failed.arn
    }
  }
}

resource "aws_cloudwatch_event_rule" "tenant" {
  for_each = local.tenant_rules

  name           = "${var.name}-${each.key}-key-requests"
  description    = "Key requests, rotation requests and revocations of tenant ${each.key}"
  event_bus_name = var.event_bus_name
  event_pattern = jsonencode({
    source = each.value.event_sources
    detail-type = [
      "OpenRouter Key Requested",
      "OpenRouter Key Rotation Requested",
      "OpenRouter Key Revocation Requested",
      "OpenRouter Key Adoption Requested",
    ]
  })
  tags = local.tags
}

resource "aws_cloudwatch_event_target" "tenant" {
  for_each = local.tenant_rules

  rule           = aws_cloudwatch_event_rule.tenant[each.key].name
  event_bus_name = var.event_bus_name
  target_id      = "provision-${each.key}"
  arn            = aws_lambda_alias.tenant[each.key].arn

  retry_policy {
    maximum_event_age_in_seconds = var.retry.maximum_event_age_seconds
    maximum_retry_attempts       = var.retry.maximum_retry_attempts
  }

  dead_letter_config {
    arn = aws_sqs_queue.dlq.arn
  }
}

resource "aws_lambda_permission" "tenant_from_eventbridge" {
  for_each = local.tenant_rules

  statement_id  = "EventBridge-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["provision"].function_name
  qualifier     = aws_lambda_alias.tenant[each.key].name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.tenant[each.key].arn
}

resource "aws_lambda_permission" "tenant_from_pipeline" {
  for_each = local.tenant_pipelines

  statement_id  = "Pipeline-${each.value.tenant}-${substr(sha256(each.value.principal), 0, 12)}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["provision"].function_name
  qualifier     = aws_lambda_alias.tenant[each.value.tenant].name
  principal     = each.value.principal
}

resource "aws_lambda_permission" "admin_from_pipeline" {
  for_each = local.tenanted ? toset(var.admin_principal_arns) : toset([])

  statement_id  = "Admin-${substr(sha256(each.key), 0, 12)}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["provision"].function_name
  qualifier     = aws_lambda_alias.admin[0].name
  principal     = each.key
}

# What a tenant's pipeline role needs: invoke its alias, nothing else.
data "aws_iam_policy_document" "tenant_invoke" {
  for_each = var.tenants

  statement {
    sid       = "InvokeOwnAlias"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_alias.tenant[each.key].arn]
  }
}

# What a tenant's event producer needs: PutEvents on the bus, only under its own sources. The
# events:source condition is what stops one team from putting events under another's source
# (and so reaching the other's rule and alias).
data "aws_iam_policy_document" "tenant_put_events" {
  for_each = local.tenant_rules

  statement {
    sid       = "PutOwnSourcesOnly"
    actions   = ["events:PutEvents"]
    resources = ["arn:${local.partition}:events:${local.region}:${local.account}:event-bus/${var.event_bus_name}"]

    condition {
      test     = "StringEquals"
      variable = "events:source"
      values   = each.value.event_sources
    }
  }
}
