"""The AWS driver: EC2 instances, EBS volumes and S3 buckets through boto3."""

from reconciler.providers.aws.provider import AwsProvider

__all__ = ["AwsProvider"]
