"""Solution to exercise 1: the lab's own caption loader, `lab/data/captions.py`.

Read `read_caption_file` and `load_captions` there; this file only re-exports
them so the autograder can check them like a student's answer.
"""

from lab.data.captions import load_captions, read_caption_file

__all__ = ["load_captions", "read_caption_file"]
