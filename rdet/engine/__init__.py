"""Training, distillation, evaluation loops and checkpoints."""
