# ---------------------------------------------------------------------------------------------
# Naming, packaging and runtime
# ---------------------------------------------------------------------------------------------

variable "name" {
  description = "Name prefix of every resource this module creates (functions, roles, queues, alarms)."
  type        = string
  default     = "orkv"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,29}$", var.name))
    error_message = "name: 1-30 characters, a letter first, then letters, digits or '-'."
  }
}

variable "package_dir" {
  description = "Directory holding <function>/bootstrap.zip for provision, rotate and sweep, as `make package` writes them (target/lambda)."
  type        = string

  validation {
    condition     = alltrue([for f in ["provision", "rotate", "sweep"] : fileexists("${var.package_dir}/${f}/bootstrap.zip")])
    error_message = "package_dir: must contain provision/bootstrap.zip, rotate/bootstrap.zip and sweep/bootstrap.zip (run `make package`)."
  }
}

variable "architecture" {
  description = "Lambda architecture the packages were built for: x86_64 (the default `make package`) or arm64 (`make package ARCH=arm64`)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture: must be \"x86_64\" or \"arm64\"."
  }
}

variable "memory_mb" {
  description = "Memory (MB) per function. The binaries peak well below 64 MB; more memory also buys CPU for TLS handshakes."
  type = object({
    provision = optional(number, 256)
    rotate    = optional(number, 256)
    sweep     = optional(number, 512)
  })
  default = {}

  validation {
    condition     = alltrue([for m in values(var.memory_mb) : m >= 128 && m <= 10240 && floor(m) == m])
    error_message = "memory_mb: each value must be a whole number within 128-10240."
  }
}

variable "timeout_seconds" {
  description = "Timeout per function. The sweep stops before its deadline and the next run resumes; rotation steps need a few round trips each."
  type = object({
    provision = optional(number, 30)
    rotate    = optional(number, 60)
    sweep     = optional(number, 300)
  })
  default = {}

  validation {
    condition     = alltrue([for t in values(var.timeout_seconds) : t >= 10 && t <= 900 && floor(t) == t])
    error_message = "timeout_seconds: each value must be a whole number within 10-900."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrency per function: a ceiling on what a flood of events can start (and on calls to OpenRouter). Off (-1) by default: Lambda keeps at least 100 of the account's concurrency unreserved, and a new account's quota can be as low as 10, so any reservation fails the first apply there. Once the account's quota allows, 10 / 10 / 2 bound a flood."
  type = object({
    provision = optional(number, -1)
    rotate    = optional(number, -1)
    sweep     = optional(number, -1)
  })
  default = {}

  validation {
    condition     = alltrue([for c in values(var.reserved_concurrency) : c == -1 || (c >= 1 && c <= 1000 && floor(c) == c)])
    error_message = "reserved_concurrency: each value must be -1 (none) or a whole number within 1-1000."
  }
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention of the function log groups (a value CloudWatch accepts)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days: must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "log_level" {
  description = "RUST_LOG filter of the functions. Keys never reach the logs at any level."
  type        = string
  default     = "info"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_=,:.-]+$", var.log_level))
    error_message = "log_level: a tracing filter such as \"info\" or \"info,orkv_vending=debug\"."
  }
}

variable "enable_xray" {
  description = "Active X-Ray tracing on the functions."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the managed secrets, the management key secret, the queues, the topic, the log groups and the functions' environment. Null: AWS-managed keys, and no KMS permissions are granted."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[a-zA-Z0-9-]+$", var.kms_key_arn))
    error_message = "kms_key_arn: must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias."
  }
}

variable "tags" {
  description = "Tags on every resource the module creates."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# OpenRouter and the management key
# ---------------------------------------------------------------------------------------------

variable "openrouter_base_url" {
  description = "OpenRouter API base URL."
  type        = string
  default     = "https://openrouter.ai/api/v1"

  validation {
    condition     = can(regex("^https://[^\\s]+$", var.openrouter_base_url))
    error_message = "openrouter_base_url: must be an https:// URL."
  }
}

variable "management_key_secret_arn" {
  description = "ARN of an existing secret holding the OpenRouter management key (plain string, or JSON with management_key). Null: the module creates an empty secret for you to fill (see the README)."
  type        = string
  default     = null

  validation {
    condition     = var.management_key_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.management_key_secret_arn))
    error_message = "management_key_secret_arn: must be a Secrets Manager secret ARN."
  }
}

variable "management_key_admin_arns" {
  description = "IAM principals besides the functions that may read the module-created management key secret (break-glass). Everyone else is denied GetSecretValue by its resource policy."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.management_key_admin_arns : can(regex("^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:.+$", a))])
    error_message = "management_key_admin_arns: each entry must be an IAM or STS principal ARN."
  }
}

# ---------------------------------------------------------------------------------------------
# The policy the provision function enforces
# ---------------------------------------------------------------------------------------------

variable "workspaces" {
  description = "Single-policy form (one implicit tenant, every caller has every power): known OpenRouter workspaces (by slug or UUID), the largest cap, in USD, of a key vended in each, and optionally the guardrail (UUID, in that workspace) every key there must carry. Give this or tenants, not both."
  type = map(object({
    max_limit_usd = number
    guardrail_id  = optional(string)
  }))
  default = {}

  validation {
    condition     = alltrue([for w in values(var.workspaces) : w.max_limit_usd > 0])
    error_message = "workspaces: every max_limit_usd must be a positive number."
  }
  validation {
    condition     = alltrue([for w in values(var.workspaces) : w.guardrail_id == null || can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", w.guardrail_id))])
    error_message = "workspaces: a guardrail_id must be a guardrail's UUID."
  }
}

variable "key_lifetime" {
  description = "Bounds of a key's lifetime (seconds), when rotation starts before expiry, and the organisation's maximum key lifetime if an OpenRouter admin set one. Requests outside min/max are refused."
  type = object({
    min_seconds           = optional(number, 3600)
    max_seconds           = optional(number, 7776000)
    default_seconds       = optional(number, 2592000)
    rotate_before_seconds = optional(number, 604800)
    # The organisation's maximum key lifetime (OpenRouter's security settings; no API shows it):
    # OpenRouter rejects every request from a key without an expiry or outliving it.
    org_max_seconds = optional(number)
  })
  default = {}

  validation {
    condition     = var.key_lifetime.min_seconds >= 1 && var.key_lifetime.min_seconds <= var.key_lifetime.max_seconds
    error_message = "key_lifetime: min_seconds must be at least 1 and at most max_seconds."
  }
  validation {
    condition     = var.key_lifetime.default_seconds >= var.key_lifetime.min_seconds && var.key_lifetime.default_seconds <= var.key_lifetime.max_seconds
    error_message = "key_lifetime: default_seconds must lie within min_seconds..max_seconds."
  }
  validation {
    condition     = var.key_lifetime.rotate_before_seconds >= 1
    error_message = "key_lifetime: rotate_before_seconds must be at least 1."
  }
  validation {
    condition     = var.key_lifetime.org_max_seconds == null ? true : var.key_lifetime.org_max_seconds >= var.key_lifetime.max_seconds
    error_message = "key_lifetime: max_seconds must not exceed org_max_seconds, the organisation's maximum key lifetime (OpenRouter rejects every request from a key that outlives it)."
  }
}

variable "secret_name_prefix" {
  description = "Every managed secret's name starts with this; the functions' permissions are scoped to it."
  type        = string
  default     = "openrouter/"

  validation {
    condition     = can(regex("^[A-Za-z0-9/_+=.@-]{1,200}$", var.secret_name_prefix)) && endswith(var.secret_name_prefix, "/")
    error_message = "secret_name_prefix: 1-200 of A-Z a-z 0-9 / _ + = . @ -, ending in '/'."
  }
}

variable "recovery_window_days" {
  description = "Recovery window of secrets deleted by a revocation (when revoke_secret = \"delete\") and of the module-created management key secret."
  type        = number
  default     = 30

  validation {
    condition     = var.recovery_window_days >= 7 && var.recovery_window_days <= 30 && floor(var.recovery_window_days) == var.recovery_window_days
    error_message = "recovery_window_days: a whole number within 7-30."
  }
}

# ---------------------------------------------------------------------------------------------
# Rotation and the sweep
# ---------------------------------------------------------------------------------------------

variable "retire_grace_seconds" {
  description = "How long a superseded key keeps working after its successor became current, so consumers can pick the new one up."
  type        = number
  default     = 7200

  validation {
    condition     = var.retire_grace_seconds >= 0 && var.retire_grace_seconds <= 2592000 && floor(var.retire_grace_seconds) == var.retire_grace_seconds
    error_message = "retire_grace_seconds: a whole number within 0-2592000 (30 days)."
  }
}

variable "rotation_safety_days" {
  description = "Secrets Manager's own rotation rule (AutomaticallyAfterDays) set by every RotateSecret the functions send, a safety net beside the expiry-driven sweep. Null: the policy's longest key lifetime in days."
  type        = number
  default     = null

  validation {
    condition     = var.rotation_safety_days == null || (coalesce(var.rotation_safety_days, 1) >= 1 && coalesce(var.rotation_safety_days, 1) <= 1000)
    error_message = "rotation_safety_days: null or a whole number within 1-1000."
  }
}

variable "sweep_schedule" {
  description = "When the sweep runs: an EventBridge Scheduler expression (rate(...) or cron(...)) and its time zone."
  type = object({
    expression = optional(string, "rate(15 minutes)")
    timezone   = optional(string, "UTC")
  })
  default = {}

  validation {
    condition     = can(regex("^(rate\\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\\)|cron\\(.+\\))$", var.sweep_schedule.expression))
    error_message = "sweep_schedule.expression: must be rate(<n> minutes|hours|days) or cron(...)."
  }
  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.sweep_schedule.timezone))
    error_message = "sweep_schedule.timezone: an IANA time zone such as UTC or Europe/Paris."
  }
}

variable "sweep" {
  description = "Sweep behaviour: rotations in flight at once, what to do with orphaned keys and with current keys broken out of band (drift: repair = rotate at once, report), and when to warn."
  type = object({
    concurrency            = optional(number, 8)
    orphans                = optional(string, "delete")
    drift                  = optional(string, "repair")
    orphan_min_age_seconds = optional(number, 900)
    low_spend_fraction     = optional(number, 0.1)
    expiry_warning_seconds = optional(number, 86400)
    # Report a current key unused for this long (0: never).
    idle_key_seconds = optional(number, 2592000)
  })
  default = {}

  validation {
    condition     = var.sweep.concurrency >= 1 && var.sweep.concurrency <= 64
    error_message = "sweep.concurrency: within 1-64."
  }
  validation {
    condition     = contains(["delete", "report"], var.sweep.orphans)
    error_message = "sweep.orphans: \"delete\" or \"report\"."
  }
  validation {
    condition     = contains(["repair", "report"], var.sweep.drift)
    error_message = "sweep.drift: \"repair\" or \"report\"."
  }
  validation {
    condition     = var.sweep.low_spend_fraction >= 0 && var.sweep.low_spend_fraction <= 1
    error_message = "sweep.low_spend_fraction: within 0-1."
  }
  validation {
    condition     = var.sweep.orphan_min_age_seconds >= 0 && var.sweep.expiry_warning_seconds >= 0 && var.sweep.idle_key_seconds >= 0
    error_message = "sweep: orphan_min_age_seconds, expiry_warning_seconds and idle_key_seconds must not be negative."
  }
}

variable "revoke_secret" {
  description = "What a revocation does to the secret after its keys are gone: \"mark\" (keep it, marked revoked) or \"delete\" (with the recovery window)."
  type        = string
  default     = "mark"

  validation {
    condition     = contains(["mark", "delete"], var.revoke_secret)
    error_message = "revoke_secret: \"mark\" or \"delete\"."
  }
}

variable "retry" {
  description = "Retry policy of the EventBridge rule target and the sweep schedule."
  type = object({
    maximum_event_age_seconds = optional(number, 3600)
    maximum_retry_attempts    = optional(number, 4)
  })
  default = {}

  validation {
    condition     = var.retry.maximum_event_age_seconds >= 60 && var.retry.maximum_event_age_seconds <= 21600
    error_message = "retry.maximum_event_age_seconds: within 60-21600 (Lambda's MaximumEventAgeInSeconds limit; the EventBridge rule and the schedule share the value)."
  }
  validation {
    condition     = var.retry.maximum_retry_attempts >= 0 && var.retry.maximum_retry_attempts <= 185
    error_message = "retry.maximum_retry_attempts: within 0-185."
  }
}

# ---------------------------------------------------------------------------------------------
# Triggers
# ---------------------------------------------------------------------------------------------

variable "event_bus_name" {
  description = "EventBridge bus the key request, rotation and revocation events arrive on."
  type        = string
  default     = "default"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]{1,256}$", var.event_bus_name))
    error_message = "event_bus_name: 1-256 of A-Z a-z 0-9 . _ - /."
  }
}

variable "event_sources" {
  description = "Single-policy form: the `source` values allowed to request keys. With tenants, each tenant lists its own (tenants.*.event_sources) and this stays empty."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.event_sources : can(regex("^[A-Za-z0-9._/-]{1,256}$", s)) && !startswith(s, "aws.")])
    error_message = "event_sources: each 1-256 of A-Z a-z 0-9 . _ - /, and not an aws.* source."
  }
}

variable "tenants" {
  description = <<-EOT
    Tenant form: each team, by name (its Lambda alias: a lowercase letter, then a-z 0-9 - _).
    workspaces: the workspaces it may vend in (slug or UUID), each with its own maximum cap,
    optional lifetime bounds (within key_lifetime) and optional guardrail_id (a guardrail of that
    workspace every key there carries); one workspace may serve several tenants at
    different caps. secret_prefix: default <secret_name_prefix><tenant>/. actions: any of
    provision, update, rotate, leak_rotate, revoke, adopt (default all). event_sources: the
    EventBridge sources of its events (its rule matches only these). pipeline_principal_arns:
    roles that may invoke its alias, and only its alias.
  EOT
  type = map(object({
    workspaces = map(object({
      max_limit_usd   = number
      min_seconds     = optional(number)
      max_seconds     = optional(number)
      default_seconds = optional(number)
      guardrail_id    = optional(string)
    }))
    secret_prefix           = optional(string)
    actions                 = optional(list(string))
    event_sources           = optional(list(string), [])
    pipeline_principal_arns = optional(list(string), [])
  }))
  default = {}

  validation {
    condition     = alltrue([for n in keys(var.tenants) : can(regex("^[a-z][a-z0-9_-]{0,63}$", n)) && n != "platform-admin"])
    error_message = "tenants: each name is a Lambda alias: a lowercase letter, then up to 63 of a-z 0-9 - _; platform-admin is reserved."
  }
  validation {
    condition     = alltrue([for t in values(var.tenants) : length(t.workspaces) > 0 && alltrue([for w in values(t.workspaces) : w.max_limit_usd > 0])])
    error_message = "tenants: each tenant needs at least one workspace, each with a positive max_limit_usd."
  }
  validation {
    condition     = alltrue([for t in values(var.tenants) : t.actions == null || alltrue([for a in coalesce(t.actions, []) : contains(["provision", "update", "rotate", "leak_rotate", "revoke", "adopt"], a)])])
    error_message = "tenants: actions are provision, update, rotate, leak_rotate, revoke or adopt."
  }
  validation {
    condition     = alltrue(flatten([for t in values(var.tenants) : [for s in t.event_sources : can(regex("^[A-Za-z0-9._/-]{1,256}$", s)) && !startswith(s, "aws.")]]))
    error_message = "tenants: each event source is 1-256 of A-Z a-z 0-9 . _ - /, and not an aws.* source."
  }
  validation {
    condition     = alltrue(flatten([for t in values(var.tenants) : [for a in t.pipeline_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", a))]]))
    error_message = "tenants: each pipeline_principal_arns entry must be an IAM role ARN."
  }
}

variable "admin_principal_arns" {
  description = "Tenant form: roles (platform operators) that may invoke the platform-admin alias, which acts for any tenant (a provision through it names the tenant in `tenant`)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", a))])
    error_message = "admin_principal_arns: each entry must be an IAM role ARN."
  }
}

variable "pipeline_principal_arns" {
  description = "Single-policy form: IAM roles (deploy pipelines) allowed to invoke the provision function directly. They also need lambda:InvokeFunction in their own policy (see the pipeline_invoke_policy_json output). With tenants, use tenants.*.pipeline_principal_arns."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.pipeline_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", a))])
    error_message = "pipeline_principal_arns: each entry must be an IAM role ARN."
  }
}

# ---------------------------------------------------------------------------------------------
# Alarms
# ---------------------------------------------------------------------------------------------

variable "alarm_topic_arn" {
  description = "Existing SNS topic for the alarms. Null with create_alarm_topic: the module creates one."
  type        = string
  default     = null
}

variable "create_alarm_topic" {
  description = "Create an SNS topic for the alarms when alarm_topic_arn is null."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------
# Result events and the dashboard
# ---------------------------------------------------------------------------------------------

variable "result_events" {
  description = "Result events (README, 'Result events'): every outcome of provision, update, rotate, revoke and finishSecret, and every refusal or failure, put on an EventBridge bus. bus_name null: the bus requests arrive on (event_bus_name). The module grants events:PutEvents on that bus, for that source, to the provision and rotate functions only."
  type = object({
    enabled  = optional(bool, true)
    bus_name = optional(string)
    source   = optional(string, "orkv.key-vending")
  })
  default = {}

  validation {
    condition     = var.result_events.bus_name == null || can(regex("^[A-Za-z0-9._/-]{1,256}$", coalesce(var.result_events.bus_name, "x")))
    error_message = "result_events.bus_name: 1-256 of A-Z a-z 0-9 . _ - /."
  }
  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]{1,256}$", var.result_events.source)) && !startswith(var.result_events.source, "aws.")
    error_message = "result_events.source: 1-256 of A-Z a-z 0-9 . _ - /, and not an aws.* source (reserved by AWS)."
  }
}

variable "create_dashboard" {
  description = "Create the CloudWatch dashboard (README, 'The dashboard')."
  type        = bool
  default     = true
}
