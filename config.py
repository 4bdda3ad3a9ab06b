"""The example app: the demo human gene API (1,965 genes from NCBI, GO, Ensembl, UniProt).

With no ES_HOST (the default) the embedded engine serves it, building the
index from the shipped data on first start. Set ES_HOST=http://localhost:9200
to serve the same API from Elasticsearch (load it with
``python -m biothings.web.load --conf=config biothings/web/demo/genes.ndjson``).
"""

import os

from biothings.web.pipeline import ESQueryBuilder
from biothings.web.settings.default import QUERY_KWARGS as _DEFAULT_QUERY_KWARGS

_DEMO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "biothings", "web", "demo")

API_NAME = "Demo Gene API"
API_DESCRIPTION = "Human genes (NCBI Entrez Gene, GO, Ensembl, UniProt): a BioThings demo."
ES_INDICES = {"gene": "genes"}
QUERY_EXAMPLES = ["cdk2", "symbol:CDK2", 'name:"cyclin dependent"', "taxid:[9000 TO 10000]", "__all__",
                  "taxid:9606"]
EMBEDDED_DATA_FILES = {
    "genes": {
        "documents": os.path.join(_DEMO, "genes.ndjson"),
        "mapping": os.path.join(_DEMO, "genes.mapping.json"),
        "metadata": os.path.join(_DEMO, "genes.meta.json"),
    },
}
ANNOTATION_ID_REGEX_LIST = [(r"ENSG\d+", ["ensembl.gene"])]
ALLOW_RANDOM_QUERY = True
ALLOW_NESTED_AGGS = True

# An app-declared option: ?species=human,mouse (names or taxids) filters by taxid.
APP_SETTINGS = ["SPECIES_TAXIDS"]  # a setting of this app's own (see settings/default.py)
SPECIES_TAXIDS = {"human": 9606, "mouse": 10090, "rat": 10116, "fruitfly": 7227, "zebrafish": 7955}
_SPECIES = {"type": list, "default": None, "max": 10, "description": "Species names or NCBI taxids."}
QUERY_KWARGS = {
    "GET": {**_DEFAULT_QUERY_KWARGS["GET"], "species": _SPECIES},
    "POST": {**_DEFAULT_QUERY_KWARGS["POST"], "species": _SPECIES},
}


class GeneQueryBuilder(ESQueryBuilder):
    """Adds the species filter: names translate to taxids."""

    def apply_extras(self, body, options):
        body = super().apply_extras(body, options)
        if options.species:
            taxids = []
            for species in options.species:
                taxid = SPECIES_TAXIDS.get(str(species).lower(), species)
                try:
                    if isinstance(taxid, (bool, float)):
                        raise ValueError
                    taxids.append(int(taxid))
                except (ValueError, TypeError):
                    from biothings.web.pipeline import BadRequest
                    raise BadRequest(f"Unknown species {species!r}.", keyword="species",
                                     allowed=sorted(SPECIES_TAXIDS)) from None
            body["query"] = {"bool": {"must": [body["query"]], "filter": [{"terms": {"taxid": taxids}}]}}
        return body


ES_QUERY_BUILDER = GeneQueryBuilder
