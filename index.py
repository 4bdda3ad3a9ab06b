"""Serve a BioThings API: ``python index.py [--conf=config] [--port=8000]``."""

from biothings.web.index_base import main

if __name__ == "__main__":
    main()
