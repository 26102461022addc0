data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  functions = toset(["provision", "rotate", "sweep"])

  account   = data.aws_caller_identity.current.account_id
  region    = data.aws_region.current.name
  partition = data.aws_partition.current.partition

  # Every managed secret: its ARN starts with the name prefix (Secrets Manager appends -XXXXXX).
  managed_secret_arns = "arn:${local.partition}:secretsmanager:${local.region}:${local.account}:secret:${var.secret_name_prefix}*"
  function_arn_prefix = "arn:${local.partition}:lambda:${local.region}:${local.account}:function:${var.name}-"

  # The tag every managed secret carries from its creation (see shared/vending record.rs).
  managed_by_tag   = "orkv:managed-by"
  managed_by_value = "openrouter-key-vending"

  management_key_secret_arn = coalesce(var.management_key_secret_arn, try(aws_secretsmanager_secret.management_key[0].arn, null))

  tenanted    = length(var.tenants) > 0
  admin_alias = "platform-admin"
  lifetime_policy = merge({
    min_ttl_seconds               = var.key_lifetime.min_seconds
    max_ttl_seconds               = var.key_lifetime.max_seconds
    default_ttl_seconds           = var.key_lifetime.default_seconds
    default_rotate_before_seconds = var.key_lifetime.rotate_before_seconds
    }, {
    # Rendered only when set: the policy shares the 4 KB environment with every tenant.
    for k, v in { org_max_key_lifetime_seconds = var.key_lifetime.org_max_seconds } : k => v if v != null
  })
  # Two renderings, one chosen (a conditional over objects of different shapes does not type).
  tenant_policy = jsonencode(merge(local.lifetime_policy, {
    admin_alias = local.admin_alias
    tenants = { for name, t in var.tenants : name => {
      workspaces = [for ws, w in t.workspaces : {
        workspace           = ws
        max_limit           = w.max_limit_usd
        min_ttl_seconds     = w.min_seconds
        max_ttl_seconds     = w.max_seconds
        default_ttl_seconds = w.default_seconds
        guardrail_id        = w.guardrail_id
      }]
      secret_prefix = t.secret_prefix
      actions       = t.actions
      event_sources = t.event_sources
    } }
  }))
  single_policy = jsonencode(merge(local.lifetime_policy, {
    workspaces = [for ws, w in var.workspaces : { workspace = ws, max_limit = w.max_limit_usd, guardrail_id = w.guardrail_id }]
  }))
  policy = local.tenanted ? local.tenant_policy : local.single_policy

  common_environment = merge(
    {
      RUST_LOG                            = var.log_level
      OPENROUTER_BASE_URL                 = var.openrouter_base_url
      OPENROUTER_MANAGEMENT_KEY_SECRET_ID = local.management_key_secret_arn
      ORKV_POLICY                         = local.policy
      ORKV_SECRET_PREFIX                  = var.secret_name_prefix
      ORKV_ROTATION_LAMBDA_ARN            = "${local.function_arn_prefix}rotate"
      ORKV_RETIRE_GRACE_SECONDS           = tostring(var.retire_grace_seconds)
      ORKV_SWEEP_CONCURRENCY              = tostring(var.sweep.concurrency)
      # Rotations one sweep starts: the rotate function's reserved concurrency (10 without one).
      ORKV_SWEEP_MAX_ROTATIONS    = tostring(var.reserved_concurrency.rotate == -1 ? 10 : var.reserved_concurrency.rotate)
      ORKV_ORPHANS                = var.sweep.orphans
      ORKV_DRIFT                  = var.sweep.drift
      ORKV_ORPHAN_MIN_AGE_SECONDS = tostring(var.sweep.orphan_min_age_seconds)
      ORKV_LOW_SPEND_FRACTION     = tostring(var.sweep.low_spend_fraction)
      ORKV_EXPIRY_WARNING_SECONDS = tostring(var.sweep.expiry_warning_seconds)
      ORKV_IDLE_KEY_SECONDS       = tostring(var.sweep.idle_key_seconds)
      ORKV_REVOKE_SECRET          = var.revoke_secret
      ORKV_RECOVERY_WINDOW_DAYS   = tostring(var.recovery_window_days)
      # A pending record must outlive the provision function's timeout (see the README).
      ORKV_PENDING_LEASE_SECONDS = tostring(var.timeout_seconds.provision * 2 + 30)
      # Every remote call gives up well before the function's own deadline.
      ORKV_HTTP_TIMEOUT_MS = "5000"
    },
    var.kms_key_arn == null ? {} : { ORKV_DEFAULT_KMS_KEY_ID = var.kms_key_arn },
    var.rotation_safety_days == null ? {} : { ORKV_ROTATION_SAFETY_DAYS = tostring(var.rotation_safety_days) },
  )

  tags = merge(var.tags, { "orkv:component" = "openrouter-key-vending" })
}

# ---------------------------------------------------------------------------------------------
# The management key: a secret only the three functions (and named admins) may read.
# ---------------------------------------------------------------------------------------------

resource "aws_secretsmanager_secret" "management_key" {
  count = var.management_key_secret_arn == null ? 1 : 0

  name_prefix             = "${var.name}-openrouter-management-key-"
  description             = "OpenRouter management (provisioning) key used by ${var.name}. Put the key as the secret value; only the vending functions can read it."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_days
  tags                    = local.tags

  #checkov:skip=CKV2_AWS_57:An OpenRouter management key is created in OpenRouter's dashboard; no Lambda can rotate it. Rotate it by hand and put the new value.
}

data "aws_iam_policy_document" "management_key" {
  count = var.management_key_secret_arn == null ? 1 : 0

  statement {
    sid       = "OnlyTheVendingFunctionsRead"
    effect    = "Deny"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotLike"
      variable = "aws:PrincipalArn"
      values = concat(
        [for f in local.functions : aws_iam_role.function[f].arn],
        var.management_key_admin_arns,
      )
    }
  }
}

resource "aws_secretsmanager_secret_policy" "management_key" {
  count = var.management_key_secret_arn == null ? 1 : 0

  secret_arn = aws_secretsmanager_secret.management_key[0].arn
  policy     = data.aws_iam_policy_document.management_key[0].json
}

# ---------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------

# Lambda's default log group name, created first so that retention and encryption apply from the
# first invocation.
resource "aws_cloudwatch_log_group" "function" {
  for_each = local.functions

  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags

  #checkov:skip=CKV_AWS_158:Encrypted with kms_key_arn when one is given; otherwise CloudWatch Logs' own encryption. The logs hold no key material (sentinel-tested).
}

resource "aws_lambda_function" "function" {
  for_each = local.functions

  function_name    = "${var.name}-${each.key}"
  description      = "OpenRouter Key Vending: ${each.key}"
  role             = aws_iam_role.function[each.key].arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${var.package_dir}/${each.key}/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.package_dir}/${each.key}/bootstrap.zip")
  memory_size      = var.memory_mb[each.key]
  timeout          = var.timeout_seconds[each.key]
  kms_key_arn      = var.kms_key_arn

  reserved_concurrent_executions = var.reserved_concurrency[each.key]

  lifecycle {
    precondition {
      condition     = (length(var.workspaces) > 0) != local.tenanted
      error_message = "Give either workspaces (the single-policy form) or tenants, not both and not neither."
    }
    precondition {
      condition     = !contains(concat(var.event_sources, flatten([for t in var.tenants : t.event_sources])), var.result_events.source)
      error_message = "result_events.source may not be an event source of requests: the functions would receive their own result events."
    }
    precondition {
      condition     = local.tenanted || length(var.event_sources) > 0
      error_message = "event_sources: the single-policy form needs at least one source."
    }
    precondition {
      condition     = !local.tenanted || (length(var.pipeline_principal_arns) == 0 && length(var.event_sources) == 0)
      error_message = "With tenants, pipelines and event sources are per tenant (tenants.*.pipeline_principal_arns, tenants.*.event_sources): an unqualified invocation is refused."
    }
  }

  environment {
    variables = merge(local.common_environment, contains(local.announcers, each.key) ? local.result_environment : {})
  }

  tracing_config {
    mode = var.enable_xray ? "Active" : "PassThrough"
  }

  tags = local.tags

  depends_on = [aws_iam_role_policy.function, aws_cloudwatch_log_group.function]

  #checkov:skip=CKV_AWS_117:The functions call only public HTTPS endpoints (OpenRouter, Secrets Manager); a VPC would add a NAT gateway and no protection.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile the deployer owns; packages are built reproducibly by `make package` and their hash is pinned by source_code_hash.
  #checkov:skip=CKV_AWS_116:Failed asynchronous invocations go to the on-failure destination queue (aws_lambda_function_event_invoke_config), which supersedes a DLQ.
  #checkov:skip=CKV_AWS_173:The environment holds no secret (the management key is read from Secrets Manager); it is encrypted with kms_key_arn when one is given.
  #checkov:skip=CKV_AWS_50:X-Ray is a module input (enable_xray), off by default for cost.
  #checkov:skip=CKV_AWS_115:Reserved concurrency is set from var.reserved_concurrency; -1 is an explicit opt-out.
}

resource "aws_lambda_function_event_invoke_config" "function" {
  for_each = local.functions

  function_name                = aws_lambda_function.function[each.key].function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = var.retry.maximum_event_age_seconds

  destination_config {
    on_failure {
      destination = aws_sqs_queue.failed.arn
    }
  }
}

# Secrets Manager invokes the rotation function, for this account only.
resource "aws_lambda_permission" "rotate_from_secretsmanager" {
  statement_id   = "SecretsManagerRotation"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.function["rotate"].function_name
  principal      = "secretsmanager.amazonaws.com"
  source_account = local.account
}

# EventBridge invokes the provision function for the rule's events only.
resource "aws_lambda_permission" "provision_from_eventbridge" {
  count = local.tenanted ? 0 : 1

  statement_id  = "EventBridgeKeyRequests"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["provision"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.requests[0].arn
}

moved {
  from = aws_lambda_permission.provision_from_eventbridge
  to   = aws_lambda_permission.provision_from_eventbridge[0]
}

# Deploy pipelines invoke the provision function directly (single-policy form).
resource "aws_lambda_permission" "provision_from_pipeline" {
  for_each = local.tenanted ? toset([]) : toset(var.pipeline_principal_arns)

  statement_id  = "Pipeline${substr(sha256(each.key), 0, 16)}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["provision"].function_name
  principal     = each.key
}
