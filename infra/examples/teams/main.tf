# A complete root module: one vending deployment for a map of teams, the way Terraform users of
# OpenRouter already describe them (one entry per team: its workspace, monthly cap, key lifetime).
#
#   make package
#   terraform -chdir=infra/examples/teams init
#   terraform -chdir=infra/examples/teams apply -var package_dir=$PWD/target/lambda
#
# Then put the management key (see the README) and let each team's system emit
# "OpenRouter Key Requested" events, or invoke the provision function from its pipeline with a
# payload like events/pipeline-provision.json.

terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      "managed-by" = "terraform"
      "project"    = "openrouter-key-vending"
    }
  }
}

variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "kms_key_arn" {
  description = "A customer KMS key for secrets, queues, the topic, logs and the schedule (null: AWS's keys). Add the module's customer_key_policy_statements output to its key policy."
  type        = string
  default     = null
}

variable "package_dir" {
  description = "Where `make package` wrote <function>/bootstrap.zip."
  type        = string
}

variable "teams" {
  description = "Teams that get OpenRouter keys, each a tenant: the workspace its keys live in, its monthly cap (USD), how long one key lives before it is rotated, its deploy role and its event source."
  type = map(object({
    workspace       = string
    monthly_cap_usd = number
    lifetime_days   = optional(number, 30)
    pipeline_role   = optional(string)
    event_source    = optional(string)
    actions         = optional(list(string))
  }))
  default = {
    search = {
      workspace       = "search-prod"
      monthly_cap_usd = 500
      lifetime_days   = 30
      event_source    = "com.example.search"
      pipeline_role   = "arn:aws:iam::123456789012:role/search-deploy"
    }
    support-bot = {
      workspace       = "support"
      monthly_cap_usd = 150
      lifetime_days   = 14
      event_source    = "com.example.support"
    }
    data-science = {
      workspace       = "research"
      monthly_cap_usd = 1000
      lifetime_days   = 7
      pipeline_role   = "arn:aws:iam::123456789012:role/research-deploy"
      actions         = ["provision", "update", "rotate"]
    }
  }

  validation {
    condition     = alltrue([for t in values(var.teams) : t.monthly_cap_usd > 0 && t.lifetime_days >= 1 && t.lifetime_days <= 90])
    error_message = "teams: monthly_cap_usd must be positive and lifetime_days within 1-90."
  }
}

variable "platform_admin_role" {
  description = "Role of the platform operators (the platform-admin alias). Null: none."
  type        = string
  default     = "arn:aws:iam::123456789012:role/platform-operators"
}

variable "alarm_email" {
  description = "Optional address subscribed to the alarm topic."
  type        = string
  default     = null
}

locals {
  lifetimes = [for t in values(var.teams) : t.lifetime_days * 86400]
}

module "key_vending" {
  source = "../.."

  name        = "orkv"
  package_dir = var.package_dir
  kms_key_arn = var.kms_key_arn

  # Each team is a tenant: its own workspace, cap and key lifetime; it reaches only its own
  # secrets (openrouter/<team>/...), through its own alias and its own event source.
  tenants = { for name, t in var.teams : name => {
    workspaces = { (t.workspace) = {
      max_limit_usd   = t.monthly_cap_usd
      max_seconds     = t.lifetime_days * 86400
      default_seconds = t.lifetime_days * 86400
    } }
    actions                 = t.actions
    event_sources           = compact([t.event_source])
    pipeline_principal_arns = compact([t.pipeline_role])
  } }
  admin_principal_arns = compact([var.platform_admin_role])
  key_lifetime = {
    min_seconds           = 86400
    max_seconds           = max(local.lifetimes...)
    default_seconds       = min(local.lifetimes...)
    rotate_before_seconds = 2 * 86400
  }

  secret_name_prefix   = "openrouter/"
  retire_grace_seconds = 7200
  sweep_schedule       = { expression = "rate(15 minutes)", timezone = "UTC" }
  log_retention_days   = 365

  tags = {
    "cost-center" = "platform"
  }
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = module.key_vending.alarm_topic_arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

output "provision_function" {
  description = "The provision function; each team invokes its own alias (aws lambda invoke --function-name ... --qualifier <team>)."
  value       = module.key_vending.function_names["provision"]
}

output "tenants" {
  description = "Per team: its alias, invoke policy, PutEvents policy, rule and example payloads."
  value       = module.key_vending.tenants
}

output "invoke_grants" {
  description = "Who may invoke which alias."
  value       = module.key_vending.invoke_grants
}

output "event_targets" {
  description = "What each rule targets."
  value       = module.key_vending.event_targets
}

output "management_key_secret_arn" {
  description = "Put the OpenRouter management key here once."
  value       = module.key_vending.management_key_secret_arn
}

output "team_secret_names" {
  description = "The secret each team's key is vended into (the default name for key_name = the team name)."
  value       = { for name, t in var.teams : name => "openrouter/${name}/${t.workspace}/${name}" }
}

output "team_key_requests" {
  description = "The pipeline payload that vends each team's key (see events/pipeline-provision.json)."
  value = {
    for name, t in var.teams : name => jsonencode({
      key_name    = name
      workspace   = t.workspace
      limit       = t.monthly_cap_usd
      limit_reset = "monthly"
      ttl_seconds = t.lifetime_days * 86400
    })
  }
}

output "policy_documents" {
  description = "Each role's rendered policy."
  value       = module.key_vending.policy_documents
}

output "dead_letter_queue_urls" {
  value       = module.key_vending.dead_letter_queue_urls
  description = "Queues to watch."
}

output "customer_key_policy_statements" {
  description = "The statements kms_key_arn's key policy needs (see the module's output)."
  value       = module.key_vending.customer_key_policy_statements
}
