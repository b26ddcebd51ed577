"""How CloudPACS is served: an ASGI application on uvicorn workers under gunicorn.

Request bodies are received by the event loop, not by a thread: a client that sends its
upload one byte at a time holds a coroutine and a file, never one of the threads that
answer everyone else. Only once a body is complete does Django run the view in a thread.
"""
