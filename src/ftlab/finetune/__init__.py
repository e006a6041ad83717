"""Fine-tuning strategies: what trains, when, and at which learning rate.

A strategy is the single owner of the optimizer's param groups, so freezing and per-group
learning rates never fight over them."""
