"""Real implementations of the core's ports: tiktoken, Hugging Face tokenizers, embeddings."""
