"""The benchmarks' client of the API (ops/bench-*.sh; the standard library only)."""
import json
import urllib.parse
import urllib.request


class Api:
    """Calls the API at `base` (the nginx address) with a default timeout in seconds."""

    def __init__(self, base, timeout):
        self.base, self.timeout = base, timeout

    def call(self, method, path, tok=None, body=None, form=None, timeout=None):
        """A JSON body or a form, with a bearer token; the answer's JSON (None when empty)."""
        headers, payload = {}, None
        if tok: headers["Authorization"] = f"Bearer {tok}"
        if body is not None: headers["Content-Type"] = "application/json"; payload = json.dumps(body).encode()
        if form is not None: headers["Content-Type"] = "application/x-www-form-urlencoded"; payload = urllib.parse.urlencode(form).encode()
        req = urllib.request.Request(self.base + path, data=payload, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=timeout or self.timeout) as r:
            t = r.read()
            return json.loads(t) if t else None

    def register(self, u):
        """Signs up user `u` and returns a login token for it."""
        self.call("POST", "/api/v1/auth/register", body={"email": f"{u}@example.com", "password": "correct horse", "username": u})
        return self.call("POST", "/api/v1/auth/login", form={"username": u, "password": "correct horse"})["access_token"]
