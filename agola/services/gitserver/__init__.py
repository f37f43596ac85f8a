"""The gitserver role: bare repositories on local disk served over git smart HTTP (spec §6.8).

``repos`` holds the business logic (path rules, creation, reading a file at a commit), ``cgi``
bridges ``git http-backend`` to aiohttp, ``api`` is the HTTP layer, ``role`` wires them.
"""
