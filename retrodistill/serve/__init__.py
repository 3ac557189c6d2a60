"""The search API: FastAPI app over an index directory, micro-batched query encoding, metrics, a web page."""
