"""The Kubernetes API side: credentials, list/watch over aiohttp, informers and conversion.

Raw API objects (decoded JSON dicts) live only inside this package; everything it hands out is
a frozen value from `ipvsd.model`.
"""
