"""Kubernetes API access shared by the kubernetes plugin and kdns-proxy.

- ``config``: where the API server is and how to authenticate (``load``, ``in_cluster``, ...).
- ``client``: ``ApiClient``, raw-JSON paginated list and chunked watch over one aiohttp session.
- ``resources``: ``Resource`` descriptors (``SERVICES``, ``ENDPOINTSLICES``, ...).
- ``reflector``: ``Reflector``, list+watch loop feeding a ``Sink`` (relist on 410, backoff).
- ``objects``: compact frozen records and the reducers that build them from raw JSON.

Import the submodules directly; this package module stays empty so that importing the light
``objects`` module does not pull in aiohttp.
"""
