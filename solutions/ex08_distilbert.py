"""Solution to exercise 8 (the course's part 2): the lab's DistilBERT plugin, `plugins/distilbert.py`.

`lab train --encoder=distilbert` and
`lab train --encoder=solutions.ex08_distilbert:distilbert` load the same encoder.
"""

from plugins.distilbert import DistilBertEncoder, distilbert, mean_pool

__all__ = ["DistilBertEncoder", "distilbert", "mean_pool"]
