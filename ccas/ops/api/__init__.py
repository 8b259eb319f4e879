"""`ccas ops-api`: the DLQ operations over HTTP (FastAPI; OpenAPI docs at /docs), bearer-token protected."""
