"""`lab train`: one `train_step` (step.py), the `Trainer` that loops over epochs (trainer.py), and the
small units it delegates to: data-parallel set-up (distributed.py), the EMA of G (ema.py), the
resume state and what a checkpoint holds (state.py), the loss meter (meter.py), the compile trial
(compile.py), what a run writes (run_log.py), Ctrl-C (interrupts.py), DiffAugment and mode seeking.

Imports lab.checkpoint, lab.data, lab.parts, lab.sample (samples each epoch) and the shared helpers."""
