"""Solution to exercise 2: the lab's sentence-transformers encoder, `plugins/sentence_encoders.py`.

`SentenceTransformerEncoder` wraps any sentence-transformers model; `mpnet`
is the registered factory the trainer calls (`--encoder=mpnet`).
"""

from plugins.sentence_encoders import SentenceTransformerEncoder, mpnet

__all__ = ["SentenceTransformerEncoder", "mpnet"]
