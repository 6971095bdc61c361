"""The inference-estimate-retrain daemon and the upload proxy."""
