API_PREFIX = "second"
API_NAME = "Second API"
ES_INDICES = {"thing": "genes"}
