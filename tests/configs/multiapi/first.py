API_PREFIX = "first"
API_NAME = "First API"
