"""The Widget domain the demo streams: model, admin, its `widgets` service and publish-after-commit."""
