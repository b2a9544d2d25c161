"""Caption -> image: `Pipeline.from_run` and `lab generate`.

Imports lab.checkpoint, lab.parts and the shared helpers."""
