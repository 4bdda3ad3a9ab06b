"""A config package: settings shared by its sub-APIs."""

API_NAME = "Two APIs"
ES_INDICES = {"gene": "genes"}
