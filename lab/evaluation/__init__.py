"""`lab eval`: FID/KID with a stated protocol, precision/recall/density/coverage, text-image
alignment, and the synthetic flowers' attribute reader.

Imports lab.sample, lab.data, lab.parts and the shared helpers; never the trainer."""
