"""The HTTP face of `ftledger serve`: JSON API, dashboard, Prometheus metrics, health.

Starlette (an ASGI toolkit) on uvicorn; imported only by `serve`, so `ftledger --help`
never loads either.
"""
