"""Lightning callbacks ftlab adds to every run: checkpoints for resume, throughput."""

LAST_CHECKPOINT = "last.ckpt"  # what `ftlab resume` starts from, in <output dir>/checkpoints/
