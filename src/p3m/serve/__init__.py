"""``p3m serve``: an HTTP service (FastAPI on uvicorn) and a web page, on the engine factory."""
