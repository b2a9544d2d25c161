"""`lab train`: one `train_step` (step.py), the `Trainer` that loops over epochs (trainer.py), and the
small units it delegates to: data-parallel set-up, the EMA of G, the resume state, the loss meter,
the compile trial, DiffAugment and mode seeking.

Imports lab.checkpoint, lab.data, lab.parts, lab.sample (samples each epoch) and the shared helpers."""
