"""Lightning callbacks ftlab adds to every run."""
