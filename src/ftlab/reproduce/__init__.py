"""Running a logged run again: `ftlab reproduce` (a new run, checked against the original) and
`ftlab resume` (the same run, continued from its last checkpoint)."""
