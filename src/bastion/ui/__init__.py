"""The read-only dashboard (layer 8, a face like the CLI): ``bastion ui``.

Server-rendered pages (FastAPI + Jinja2, autoescaped; no JavaScript, no CDN, CSS shipped in the package) over
the project's public APIs: the inventory, lineage graphs (SVG), audit results with their plots, gateway and
guard alerts, hunting findings and response actions, drift charts and the audit log's verification state
(OK / UNWITNESSED / FAILED). Token login (auditor role and above) gives a session cookie holding a random id,
never the token; every page is read as the signed-in identity, so the library's permission checks apply.
TLS like the gateway (a self-signed certificate in the home unless one is given); plain HTTP only on loopback.
"""

from __future__ import annotations

from bastion.ui.server import UIOptions, build, run

__all__ = ["UIOptions", "build", "run"]
