"""BioThings: serve biomedical data as a query API."""

__version__ = "0.1.0"
