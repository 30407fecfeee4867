"""Adapters to the ASGI servers (uvicorn, daphne): the only code that knows a server's internals."""
