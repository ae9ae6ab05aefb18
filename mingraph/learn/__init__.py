"""Stage 4, learn: the GAT models, the model file (bundle), training, and the learnt baselines."""
