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

variable "package_dir" {
  description = "Where `make package` wrote <function>/bootstrap.zip."
  type        = string
}

variable "teams" {
  description = "Teams that get OpenRouter keys: the workspace their keys live in, their monthly cap (USD) and how long one key lives before it is rotated."
  type = map(object({
    workspace       = string
    monthly_cap_usd = number
    lifetime_days   = optional(number, 30)
    pipeline_role   = optional(string)
    event_source    = optional(string)
  }))
  default = {
    search = {
      workspace       = "search-prod"
      monthly_cap_usd = 500
      lifetime_days   = 30
      event_source    = "com.example.search"
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
    }
  }

  validation {
    condition     = alltrue([for t in values(var.teams) : t.monthly_cap_usd > 0 && t.lifetime_days >= 1 && t.lifetime_days <= 90])
    error_message = "teams: monthly_cap_usd must be positive and lifetime_days within 1-90."
  }
}

variable "alarm_email" {
  description = "Optional address subscribed to the alarm topic."
  type        = string
  default     = null
}

locals {
  # A workspace's cap is the largest cap of the teams that share it.
  workspaces = {
    for ws in distinct([for t in values(var.teams) : t.workspace]) :
    ws => { max_limit_usd = max([for t in values(var.teams) : t.monthly_cap_usd if t.workspace == ws]...) }
  }
  lifetimes = [for t in values(var.teams) : t.lifetime_days * 86400]
}

module "key_vending" {
  source = "../.."

  name        = "orkv"
  package_dir = var.package_dir

  workspaces = local.workspaces
  key_lifetime = {
    min_seconds           = 86400
    max_seconds           = max(local.lifetimes...)
    default_seconds       = min(local.lifetimes...)
    rotate_before_seconds = 2 * 86400
  }

  secret_name_prefix      = "openrouter/"
  event_sources           = concat(["com.example.platform"], compact([for t in values(var.teams) : t.event_source]))
  pipeline_principal_arns = compact([for t in values(var.teams) : t.pipeline_role])
  retire_grace_seconds    = 7200
  sweep_schedule          = { expression = "rate(15 minutes)", timezone = "UTC" }
  log_retention_days      = 365

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
  description = "Invoke this from a pipeline (aws lambda invoke --function-name ...)."
  value       = module.key_vending.function_names["provision"]
}

output "management_key_secret_arn" {
  description = "Put the OpenRouter management key here once."
  value       = module.key_vending.management_key_secret_arn
}

output "team_secret_names" {
  description = "The secret each team's key is vended into (when requested with secret_name = the team name)."
  value       = { for name, t in var.teams : name => "openrouter/${name}" }
}

output "team_key_requests" {
  description = "The pipeline payload that vends each team's key (see events/pipeline-provision.json)."
  value = {
    for name, t in var.teams : name => jsonencode({
      secret_name = "openrouter/${name}"
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
