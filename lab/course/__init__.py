"""For students and their instructors: `lab grade` (the grader, its child harness, manifest,
reports and sandbox) and `lab quiz`.

Independent of the training internals: it never imports lab.train (contract in pyproject.toml)."""
