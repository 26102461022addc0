# Written by tests/infra/terraform-test.sh into a copy of the example: every service at moto.
provider "aws" {
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  skip_region_validation      = true

  endpoints {
    cloudwatch     = "@MOTO@"
    cloudwatchlogs = "@MOTO@"
    eventbridge    = "@MOTO@"
    iam            = "@MOTO@"
    kms            = "@MOTO@"
    lambda         = "@MOTO@"
    scheduler      = "@MOTO@"
    secretsmanager = "@MOTO@"
    sns            = "@MOTO@"
    sqs            = "@MOTO@"
    sts            = "@MOTO@"
  }
}
