"""A loopback stub of one cluster version, for the version negotiation tests.

It answers ``GET /`` as Elasticsearch 7/8/9 or OpenSearch 1/2/3 does (version,
tagline, ``X-Elastic-Product`` from Elasticsearch 7.14 on), enforces each
version's media type rules (Elasticsearch 8 accepts ``compatible-with`` 7 or 8,
9 accepts 8 or 9, 7 accepts 7; OpenSearch answers 406 to any
``application/vnd.elasticsearch+json``), records the headers of every request,
and answers the searches, mapping and count of one gene in the shapes real
clusters give.
"""

import base64
import datetime
import ipaddress
import re
import ssl

import orjson
import tornado.web

from tests.servers import LoopbackServer

COMPATIBLE = re.compile(r"application/vnd\.elasticsearch\+[a-z-]+;\s*compatible-with=(\d+)")
GENE = {"symbol": "CDK2", "name": "cyclin dependent kinase 2", "taxid": 9606}
PROPERTIES = {"symbol": {"type": "keyword"}, "name": {"type": "text"}, "taxid": {"type": "integer"}}


class ClusterStub(LoopbackServer):
    """One cluster version on a loopback port: ``ClusterStub("elasticsearch", "8.15.3")``."""

    def __init__(self, distribution, version, port=None, password=None, certificate=None):
        super().__init__(port)
        self.certificate = certificate  # (certfile, keyfile): serve https
        if certificate:
            self.url = self.url.replace("http://", "https://")
        self.distribution = distribution
        self.version = version
        self.major, self.minor = (int(part) for part in version.split(".")[:2])
        self.password = password  # basic auth ("elastic", password) required when set
        self.requests = []  # (method, path, headers) of every request

    def root(self):
        if self.distribution == "opensearch":
            return {"name": "stub", "cluster_name": "stub", "version": {
                "distribution": "opensearch", "number": self.version, "build_type": "tar"},
                "tagline": "The OpenSearch Project: https://opensearch.org/"}
        return {"name": "stub", "cluster_name": "stub", "version": {
            "number": self.version, "build_flavor": "default", "build_type": "docker"},
            "tagline": "You Know, for Search"}

    def accepted_compatibility(self):
        """The ``compatible-with`` versions this cluster accepts (REST API compatibility: N and N-1)."""
        if self.distribution == "opensearch":
            return set()
        return {self.major, self.major - 1} if self.major >= 8 else {self.major}

    def search_answer(self):
        return {"took": 1, "timed_out": False,
                "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                "hits": {"total": {"value": 1, "relation": "eq"}, "max_score": 1.0,
                         "hits": [{"_index": "stub_genes_1", "_id": "1017", "_score": 1.0, "_source": GENE}]}}

    def server_options(self):
        if not self.certificate:
            return {}
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*self.certificate)
        return {"ssl_options": context}

    def make_app(self):
        return tornado.web.Application([(r"/.*", _StubHandler, {"stub": self})], log_function=lambda handler: None)

    def searches(self):
        """``(path, headers)`` of the ``_search``/``_msearch`` requests received."""
        return [(path, headers) for method, path, headers in self.requests if path.endswith(("/_search", "/_msearch"))]


class _StubHandler(tornado.web.RequestHandler):
    def initialize(self, stub):
        self.stub = stub

    def answer(self, status, body, content_type="application/json; charset=UTF-8"):
        stub = self.stub
        self.set_status(status)
        self.set_header("Content-Type", content_type)
        if stub.distribution == "elasticsearch" and (stub.major, stub.minor) >= (7, 14):
            self.set_header("X-Elastic-Product", "Elasticsearch")
        self.finish(orjson.dumps(body))

    async def prepare(self):
        stub = self.stub
        request = self.request
        stub.requests.append((request.method, request.path, dict(request.headers)))
        if stub.password is not None and not self._authorized():
            return self.answer(401, {"error": {"type": "security_exception", "reason": "missing authentication"},
                                     "status": 401})
        media = " ".join(request.headers.get_list("Accept") + request.headers.get_list("Content-Type"))
        if "vnd.elasticsearch" in media and stub.distribution == "opensearch":
            return self.answer(406, {"error": f"Content-Type header [{media}] is not supported", "status": 406})
        versions = {int(number) for number in COMPATIBLE.findall(media)}
        refused = versions - stub.accepted_compatibility()
        if refused:
            accepted = " or ".join(map(str, sorted(stub.accepted_compatibility(), reverse=True))) or "none"
            return self.answer(400, {"error": {"type": "media_type_header_exception",
                                               "reason": f"Accept version must be either version {accepted}, "
                                                         f"but found {max(refused)}"}, "status": 400})
        self.content_type = (f"application/vnd.elasticsearch+json;compatible-with={max(versions)}"
                             if versions else "application/json; charset=UTF-8")

    def _authorized(self):
        expected = "Basic " + base64.b64encode(f"elastic:{self.stub.password}".encode()).decode()
        return self.request.headers.get("Authorization") == expected

    def check_xsrf_cookie(self):
        pass

    def route(self):
        stub = self.stub
        path = self.request.path
        if path == "/":
            return stub.root()
        if path == "/_cluster/health":
            return {"cluster_name": "stub", "status": "green", "number_of_nodes": 1}
        if path.endswith("/_msearch"):
            count = len([line for line in self.request.body.splitlines() if line.strip()]) // 2
            return {"took": 1, "responses": [dict(stub.search_answer(), status=200) for _ in range(count)]}
        if path.endswith("/_search"):
            return stub.search_answer()
        if path.endswith("/_mapping"):
            return {"stub_genes_1": {"mappings": {"properties": PROPERTIES, "_meta": {
                "build_version": f"{stub.distribution}-{stub.version}", "src": {}}}}}
        if path.endswith("/_count"):
            return {"count": 1, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}
        return None

    async def _serve(self):
        body = self.route()
        if body is None:
            self.answer(404, {"error": {"type": "resource_not_found_exception", "reason": "not in the stub"},
                              "status": 404}, self.content_type)
        else:
            self.answer(200, body, self.content_type)

    get = post = put = _serve


def self_signed_certificate(directory):
    """``(certfile, keyfile)`` of a certificate for 127.0.0.1 that only itself vouches for."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cluster stub")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    certfile, keyfile = directory / "stub.crt", directory / "stub.key"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(certfile), str(keyfile)
