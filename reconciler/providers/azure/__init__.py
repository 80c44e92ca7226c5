"""The Azure driver (``spec.provider: azure``): ARM compute and Blob storage."""

from reconciler.providers.azure.provider import AzureProvider

__all__ = ["AzureProvider"]
