"""Who may say who the client is: ``X-Forwarded-For``, ``X-Real-Ip``, ``X-Forwarded-Proto``.

Behind a proxy every connection comes from the proxy, which passes the
client's address and scheme in these headers. Anyone who reaches the server
directly can send them too (to forge the address in the logs, or the scheme of
the OpenAPI document's server URL), so they are read only from the peers listed
in ``HTTP_TRUSTED_PROXIES``. The application applies them
(``BiothingsApplication.find_handler``), so both HTTP servers behave alike.
"""

import ipaddress

from tornado import netutil

# as tornado's HTTPHeaders spells its keys (Http-Header-Case)
_FORWARDED = frozenset({"X-Forwarded-For", "X-Real-Ip", "X-Forwarded-Proto", "X-Scheme"})


class TrustedProxies:
    """The addresses and networks of trusted proxies (``["127.0.0.0/8", "10.1.2.3"]``)."""

    _CACHE_SIZE = 4096  # peer address -> trusted, remembered for this many peers

    def __init__(self, entries):
        self.networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in entries or ())
        self._known = {}

    def trusts(self, ip):
        """True when ``ip`` (a string) is a trusted proxy's address."""
        found = self._known.get(ip)
        if found is None:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                found = False
            else:
                if address.version == 6 and address.ipv4_mapped is not None:
                    address = address.ipv4_mapped  # an IPv4 peer of a dual-stack socket
                found = any(address in network for network in self.networks)
            if len(self._known) >= self._CACHE_SIZE:
                self._known.clear()
            self._known[ip] = found
        return found

    def apply(self, request):
        """Set ``request.remote_ip`` and ``request.protocol`` from the headers of a trusted proxy."""
        if not self.networks or not self.trusts(request.remote_ip):
            return
        headers = request.headers
        if _FORWARDED.isdisjoint(headers):  # its names, in C: most requests carry none of these
            return
        ip = request.remote_ip
        if "X-Forwarded-For" in headers:
            # each proxy appends the address it got the request from: the client is the
            # last one that is not itself a trusted proxy
            for hop in reversed(headers["X-Forwarded-For"].split(",")):
                hop = hop.strip()
                if not netutil.is_valid_ip(hop):
                    break
                ip = hop
                if not self.trusts(hop):
                    break
        real_ip = headers.get("X-Real-Ip", "").strip()
        if netutil.is_valid_ip(real_ip):
            ip = real_ip  # as tornado's xheaders: the proxy names the client itself
        request.remote_ip = ip
        scheme = headers.get("X-Scheme") or headers.get("X-Forwarded-Proto")
        if scheme:
            scheme = scheme.split(",")[-1].strip().lower()
            if scheme in ("http", "https"):
                request.protocol = scheme
